package api

import (
	"testing"

	"github.com/trellis-sdwan/trellis/manage/store/storetest"
)

// TestAPIOnPostgres runs the API tests against PostgreSQL as well when
// TRELLIS_TEST_POSTGRES is set (skipped otherwise; required under CI=true).
func TestAPIOnPostgres(t *testing.T) {
	storetest.PostgresDSN(t)
	for name, fn := range map[string]func(*testing.T, *env){
		"AccessKeys":         testAccessKeys,
		"AuditAtomic":        testAuditAtomic,
		"BadInput":           testBadInput,
		"ConcurrentRequests": testConcurrentRequests,
		"Devices":            testDevices,
		"ForceTOTP":          testForceTOTP,
		"InternetCheck":      testInternetCheckAPI,
		"Invitations":        testInvitations,
		"LoginRateLimit":     testLoginRateLimit,
		"LoginSessionLogout": testLoginSessionLogout,
		"Members":            testMembers,
		"NetworkAPI":         testNetworkAPI,
		"OpenAPICoverage":    testOpenAPICoverage,
		"OrgIsolation":       testOrgIsolation,
		"OrgTokens":          testOrgTokens,
		"PasswordChange":     testPasswordChange,
		"PathLabelsCRUD":     testPathLabelsCRUD,
		"PolicyAPI":          testPolicyAPI,
		"RBACThroughAPI":     testRBACThroughAPI,
		"ResourceThresholds": testResourceThresholdsAPI,
		"TOTPFlow":           testTOTPFlow,
		"Tenancy":            testTenancy,
	} {
		t.Run(name, func(t *testing.T) { fn(t, newEnvOn(t, storetest.OpenPostgres(t))) })
	}
}
