// Package auth holds the controller's authentication and authorization
// primitives: argon2id password hashes, TOTP second factor with recovery
// codes, random bearer secrets (sessions, access keys, invitations), a login
// rate limiter, sealing of secrets at rest, and role-based access control
// over the account ⊇ group ⊇ organization tree.
//
// Nothing here talks to the database or HTTP; manage/api wires it together.
package auth
