package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// startServer runs a server made from cfg until the test ends.
func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return srv
}

// apiClient calls a running server: base is its scheme and address,
// c the client to call it with.
type apiClient struct {
	t    *testing.T
	base string
	c    *http.Client
}

// httpsAPI calls srv on its HTTPS address, pinning its certificate.
func httpsAPI(t *testing.T, srv *Server) apiClient {
	return apiClient{t: t, base: "https://" + srv.Addr(), c: pinnedClient(srv.Fingerprint())}
}

// httpAPI calls srv on its plain HTTP address.
func httpAPI(t *testing.T, srv *Server) apiClient {
	return apiClient{t: t, base: "http://" + srv.HTTPAddr(), c: http.DefaultClient}
}

// call sends body (JSON; nil: none) to path with token (if any), decodes
// the answer into out (if not nil) and returns the status code.
func (a apiClient) call(method, path, token string, body, out any) int {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, a.base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := a.c.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if out != nil {
		_ = json.Unmarshal(raw, out)
	}
	return res.StatusCode
}

// login logs the default admin in with password and returns the session
// token and the first organization's id.
func (a apiClient) login(password string) (token, org string) {
	a.t.Helper()
	var login struct{ Token string }
	if st := a.call("POST", "/api/v1/auth/login", "", map[string]string{"email": DefaultAdminEmail, "password": password}, &login); st != 200 {
		a.t.Fatalf("login %d", st)
	}
	var orgs struct{ Items []struct{ ID string } }
	a.call("GET", "/api/v1/organizations", login.Token, nil, &orgs)
	return login.Token, orgs.Items[0].ID
}

// edgeToken makes an organization token for edges with the session token.
func (a apiClient) edgeToken(token, org string) string {
	a.t.Helper()
	var tok struct{ Token string }
	if st := a.call("POST", "/api/v1/organizations/"+org+"/tokens", token, map[string]string{"name": "edges"}, &tok); st != 201 {
		a.t.Fatalf("token %d", st)
	}
	return tok.Token
}

// register registers a device with info and the organization token.
func (a apiClient) register(orgToken string, info devproto.DeviceInfo) devproto.RegisterResponse {
	a.t.Helper()
	var reg devproto.RegisterResponse
	if st := a.call("POST", devproto.PathRegister, "", devproto.RegisterRequest{Token: orgToken, Info: info}, &reg); st != 201 {
		a.t.Fatalf("register %d", st)
	}
	return reg
}

// hello opens the channel of the registered device reg, which says Hello
// with info; the connection is closed when the test ends.
func (a apiClient) hello(ctx context.Context, reg devproto.RegisterResponse, info devproto.DeviceInfo) *websocket.Conn {
	a.t.Helper()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(a.base, "http")+devproto.PathChannel, &websocket.DialOptions{HTTPClient: a.c,
		HTTPHeader: http.Header{"Authorization": {"Bearer " + reg.Credential}}})
	if err != nil {
		a.t.Fatal(err)
	}
	a.t.Cleanup(func() { ws.CloseNow() })
	body, _ := json.Marshal(devproto.Hello{Info: info})
	env, _ := json.Marshal(devproto.Envelope{V: devproto.Version, Type: devproto.TypeHello, Time: time.Now(), Body: body})
	if err := ws.Write(ctx, websocket.MessageText, env); err != nil {
		a.t.Fatal(err)
	}
	return ws
}
