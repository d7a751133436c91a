// Package monitor is manage's monitoring (issue 9): it turns the stats
// edges report into time series (rates per interface, tunnel and
// application), raises and resolves alerts with hold-down so that a
// flapping condition does not storm, and delivers notifications in the
// application, by e-mail (SMTP) and to signed webhooks.
//
// The pure parts (rates, the alert engine, webhook signing and delivery,
// mail formatting and sending) need no store; Service ties them to one
// through the small Store interface in service.go.
package monitor
