package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/store"
)

var _ Lookup = store.Store(nil)

// memLookup is an in-memory Lookup.
type memLookup struct {
	mu       sync.Mutex
	creds    map[string]*store.Credential
	projects map[string]*store.Project
	err      error // returned by every call when set
}

func (m *memLookup) GetCredential(_ context.Context, ak string) (*store.Credential, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return nil, m.err
	}
	c, ok := m.creds[ak]
	if !ok {
		return nil, store.ErrCredentialUnknown
	}
	cp := *c
	return &cp, nil
}

func (m *memLookup) GetProject(_ context.Context, id string) (*store.Project, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return nil, m.err
	}
	p, ok := m.projects[id]
	if !ok {
		return nil, store.ErrProjectNotFound
	}
	cp := *p
	return &cp, nil
}

func (m *memLookup) revoke(ak string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.creds[ak].Revoked = true
}

// Fixture: account A owns projects P1 and P2, account B owns PB.
const (
	rootAK = "ROOTAAAAAAAAAAAAAAAA"
	rootSK = "rootSecretrootSecretrootSecretrootSecret"
	userAK = "USERAAAAAAAAAAAAAAAA"
	userSK = "userSecretuserSecretuserSecretuserSecret"
	listAK = "LISTAAAAAAAAAAAAAAAA" // may only list, and only in P2
	listSK = "listSecretlistSecretlistSecretlistSecret"
	p1     = "p1000000000000000000000000000001"
	p2     = "p2000000000000000000000000000002"
	pB     = "pb00000000000000000000000000000b"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func testKeyring(t testing.TB) *Keyring {
	t.Helper()
	k, err := NewKeyring(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newFixture(t testing.TB, k *Keyring) *memLookup {
	t.Helper()
	seal := func(sk string) []byte {
		b, err := k.Seal([]byte(sk))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return &memLookup{
		creds: map[string]*store.Credential{
			rootAK: {AccessKey: rootAK, SecretKey: seal(rootSK), UserID: "root-a", AccountID: "A", Root: true},
			userAK: {AccessKey: userAK, SecretKey: seal(userSK), UserID: "user-a", AccountID: "A", Actions: []string{ActionAll}},
			listAK: {AccessKey: listAK, SecretKey: seal(listSK), UserID: "lister-a", AccountID: "A",
				ProjectIDs: []string{p2}, Actions: []string{ActionList}},
		},
		projects: map[string]*store.Project{
			p1: {ID: p1, AccountID: "A", Region: "r1"},
			p2: {ID: p2, AccountID: "A", Region: "r1"},
			pB: {ID: pB, AccountID: "B", Region: "r1"},
		},
	}
}

// clock is a settable injected clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

func newTestVerifier(t testing.TB) (*Verifier, *memLookup, *Keyring, *clock) {
	k := testKeyring(t)
	l := newFixture(t, k)
	c := &clock{t: t0}
	return NewVerifier(l, k, c.now), l, k, c
}

const modifyBody = `{"task_id":"t-1","status":"pause"}`

// signedRequest is a request as the server receives it, signed at t0.
func signedRequest(method, target, body, ak, sk string) *http.Request {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	r.Host = "relay.example.com:8443"
	r.Header.Set("Content-Type", "application/json; charset=UTF-8")
	r.Header.Set("X-Project-Id", p1)
	r.Header.Set("User-Agent", "test")
	Sign(r, []byte(body), ak, sk, t0)
	return r
}

func pathOf(project string) string { return "/v1/" + project + "/pull/stream/task" }

func TestVerifierSignature(t *testing.T) {
	const target = "/v1/" + p1 + "/pull/stream/task?task_id=t-1&region=r1&limit=10"
	tests := []struct {
		name   string
		tamper func(r *http.Request, body *string)
		want   error
	}{
		{"untouched", func(*http.Request, *string) {}, nil},
		{"method", func(r *http.Request, _ *string) { r.Method = http.MethodPost }, ErrUnauthenticated},
		{"path", func(r *http.Request, _ *string) { r.URL.Path = pathOf(p1) + "s" }, ErrUnauthenticated},
		{"path trailing slash is the SDKs' blind spot", func(r *http.Request, _ *string) { r.URL.Path += "/" }, nil},
		{"query value", func(r *http.Request, _ *string) {
			r.URL.RawQuery = strings.Replace(r.URL.RawQuery, "limit=10", "limit=11", 1)
		}, ErrUnauthenticated},
		{"query key", func(r *http.Request, _ *string) {
			r.URL.RawQuery = strings.Replace(r.URL.RawQuery, "limit=10", "offset=10", 1)
		}, ErrUnauthenticated},
		{"query pair added", func(r *http.Request, _ *string) { r.URL.RawQuery += "&offset=5" }, ErrUnauthenticated},
		{"query value repeated", func(r *http.Request, _ *string) { r.URL.RawQuery += "&task_id=t-2" }, ErrUnauthenticated},
		{"query reordered", func(r *http.Request, _ *string) { r.URL.RawQuery = "limit=10&region=r1&task_id=t-1" }, nil},
		{"query encoded differently", func(r *http.Request, _ *string) { r.URL.RawQuery = "limit=1%30&region=%72%31&task_id=t-1" }, nil},
		{"query not decodable", func(r *http.Request, _ *string) { r.URL.RawQuery += "&x=%zz" }, ErrUnauthenticated},
		{"signed header value", func(r *http.Request, _ *string) { r.Header.Set("Content-Type", "text/plain") }, ErrUnauthenticated},
		{"signed header repeated", func(r *http.Request, _ *string) { r.Header.Add("Content-Type", "text/plain") }, ErrUnauthenticated},
		{"signed header whitespace", func(r *http.Request, _ *string) { r.Header.Set("Content-Type", "  application/json; charset=UTF-8 ") }, nil},
		{"host", func(r *http.Request, _ *string) { r.Host = "other.example.com:8443" }, ErrUnauthenticated},
		{"unsigned header", func(r *http.Request, _ *string) {
			r.Header.Set("User-Agent", "other")
			r.Header.Set("Accept", "text/plain")
			r.Header.Set("X-Request-Id", "abc")
		}, nil},
		{"body", func(_ *http.Request, body *string) { *body = strings.Replace(*body, "pause", "enable", 1) }, ErrUnauthenticated},
		{"body whitespace", func(_ *http.Request, body *string) { *body += "\n" }, ErrUnauthenticated},
		{"date", func(r *http.Request, _ *string) { r.Header.Set(headerDate, "20261125T100001Z") }, ErrUnauthenticated},
		{"date missing", func(r *http.Request, _ *string) { r.Header.Del(headerDate) }, ErrUnauthenticated},
		{"date not canonical", func(r *http.Request, _ *string) { r.Header.Set(headerDate, "20261125T100000z") }, ErrUnauthenticated},
		{"access key of another user", func(r *http.Request, _ *string) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), rootAK, userAK, 1))
		}, ErrUnauthenticated},
		{"unknown access key", func(r *http.Request, _ *string) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), rootAK, "NOSUCHKEYAAAAAAAAAAA", 1))
		}, ErrUnauthenticated},
		{"signature", func(r *http.Request, _ *string) {
			h := r.Header.Get("Authorization")
			last := h[len(h)-1]
			flip := byte('0')
			if last == '0' {
				flip = '1'
			}
			r.Header.Set("Authorization", h[:len(h)-1]+string(flip))
		}, ErrUnauthenticated},
		{"authorization removed", func(r *http.Request, _ *string) { r.Header.Del("Authorization") }, ErrUnauthenticated},
		{"other scheme", func(r *http.Request, _ *string) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), algorithm, "SDK-HMAC-SHA512", 1))
		}, ErrUnauthenticated},
		{"token as well", func(r *http.Request, _ *string) { r.Header.Set(headerToken, "lr1.x.y") }, ErrUnauthenticated},
		{"content hash header matching the body", func(r *http.Request, body *string) {
			sum := sha256.Sum256([]byte(*body))
			r.Header.Set(headerContentSHA256, hex.EncodeToString(sum[:]))
		}, nil},
		{"content hash header not matching the body", func(r *http.Request, _ *string) {
			sum := sha256.Sum256([]byte("other"))
			r.Header.Set(headerContentSHA256, hex.EncodeToString(sum[:]))
		}, ErrUnauthenticated},
		{"unsigned payload with a body", func(r *http.Request, _ *string) { r.Header.Set(headerContentSHA256, unsignedPayload) }, ErrUnauthenticated},
		{"project header differs from path", func(r *http.Request, _ *string) { r.Header.Set("X-Project-Id", p2) }, ErrUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, _, _, _ := newTestVerifier(t)
			body := modifyBody
			r := signedRequest(http.MethodPut, target, body, rootAK, rootSK)
			tt.tamper(r, &body)
			c, err := v.Authorize(context.Background(), r, []byte(body), p1, ActionModify)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Authorize = %v, want %v", err, tt.want)
			}
			if err == nil && (c.AccessKey != rootAK || c.AccountID != "A" || !c.Root || c.UserID != "root-a") {
				t.Fatalf("caller = %+v", c)
			}
			if err != nil {
				_, _, sig, _ := ParseAuthorization(r.Header.Get("Authorization"))
				if msg := err.Error(); strings.Contains(msg, rootSK) || (sig != nil && strings.Contains(msg, hex.EncodeToString(sig))) {
					t.Fatalf("error leaks a secret: %q", msg)
				}
			}
		})
	}
}

// The project header is signed by Sign, so changing it breaks the signature
// before the header check; a header the client sent unsigned but different
// from the path is refused as forbidden.
func TestVerifierProjectHeader(t *testing.T) {
	v, _, _, _ := newTestVerifier(t)
	r := httptest.NewRequest(http.MethodGet, pathOf(p1), nil)
	Sign(r, nil, rootAK, rootSK, t0) // no X-Project-Id: not signed
	r.Header.Set("X-Project-Id", p2)
	if _, err := v.Authorize(context.Background(), r, nil, p1, ActionList); !errors.Is(err, ErrForbidden) {
		t.Fatalf("mismatched X-Project-Id: %v, want ErrForbidden", err)
	}
	r = httptest.NewRequest(http.MethodGet, pathOf(p1), nil)
	Sign(r, nil, rootAK, rootSK, t0.Add(time.Second))
	if _, err := v.Authorize(context.Background(), r, nil, p1, ActionList); err != nil {
		t.Fatalf("without X-Project-Id: %v", err)
	}
}

func TestVerifierSignedHeadersWithoutDate(t *testing.T) {
	v, _, _, _ := newTestVerifier(t)
	r := httptest.NewRequest(http.MethodGet, pathOf(p1), nil)
	r.Header.Set(headerDate, t0.Format(dateFormat))
	names := []string{"host"}
	cr, err := canonicalRequest(r, nil, names)
	if err != nil {
		t.Fatal(err)
	}
	// A correct signature, over everything but the date.
	sig := signString([]byte(rootSK), stringToSign(t0.Format(dateFormat), cr))
	r.Header.Set("Authorization", formatAuthorization(rootAK, names, sig))
	if _, err := v.Authorize(context.Background(), r, nil, p1, ActionList); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("Authorize = %v, want ErrUnauthenticated", err)
	}
}

// Whatever headers the client chose to sign are checked, in its order.
func TestVerifierAnySignedHeaders(t *testing.T) {
	v, _, _, _ := newTestVerifier(t)
	r := httptest.NewRequest(http.MethodGet, pathOf(p1)+"?limit=5", nil)
	r.Header.Set(headerDate, t0.Format(dateFormat))
	r.Header.Set("X-Custom", "one")
	r.Header.Add("X-Custom", "two")
	names := []string{"x-sdk-date", "x-custom", "x-absent"}
	cr, err := canonicalRequest(r, nil, names)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Authorization", formatAuthorization(userAK, names, signString([]byte(userSK), stringToSign(t0.Format(dateFormat), cr))))
	r2 := r.Clone(context.Background())
	if _, err := v.Authorize(context.Background(), r, nil, p1, ActionList); err != nil {
		t.Fatalf("Authorize = %v", err)
	}
	r2.Header.Set("X-Absent", "now present")
	if _, err := v.Authorize(context.Background(), r2, nil, p1, ActionList); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("with a signed header added: %v, want ErrUnauthenticated", err)
	}
}

// X-Sdk-Content-Sha256 stands for the body in the canonical request, so a
// valid signature over it proves nothing about the body unless the header
// matches the body.
func TestVerifierContentHashHeader(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		values []string
		want   error
	}{
		{"unsigned payload without a body", "", []string{unsignedPayload}, nil},
		{"unsigned payload with a body", modifyBody, []string{unsignedPayload}, ErrUnauthenticated},
		{"hash of the body", modifyBody, []string{sha256Hex(modifyBody)}, nil},
		{"hash of another body", modifyBody, []string{sha256Hex("{}")}, ErrUnauthenticated},
		{"uppercase hash", modifyBody, []string{strings.ToUpper(sha256Hex(modifyBody))}, ErrUnauthenticated},
		{"repeated", modifyBody, []string{sha256Hex(modifyBody), unsignedPayload}, ErrUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, _, _, _ := newTestVerifier(t)
			r := httptest.NewRequest(http.MethodPut, pathOf(p1), strings.NewReader(tt.body))
			for _, val := range tt.values {
				r.Header.Add(headerContentSHA256, val)
			}
			Sign(r, []byte(tt.body), rootAK, rootSK, t0) // a valid signature in every case
			_, err := v.Authorize(context.Background(), r, []byte(tt.body), p1, ActionModify)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Authorize = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestVerifierReplay(t *testing.T) {
	v, _, _, clk := newTestVerifier(t)
	r := signedRequest(http.MethodPut, pathOf(p1), modifyBody, rootAK, rootSK)
	if _, err := v.Authorize(context.Background(), r, []byte(modifyBody), p1, ActionModify); err != nil {
		t.Fatalf("first: %v", err)
	}
	clk.set(t0.Add(time.Minute))
	_, err := v.Authorize(context.Background(), r, []byte(modifyBody), p1, ActionModify)
	if !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "replayed") {
		t.Fatalf("replay: %v, want ErrUnauthenticated (replayed)", err)
	}
	// Reading twice is not a replay worth refusing: the SDKs sign to the
	// second, so a polling client repeats signatures.
	get := httptest.NewRequest(http.MethodGet, pathOf(p1)+"?limit=1", nil)
	Sign(get, nil, rootAK, rootSK, t0)
	for i := range 2 {
		if _, err := v.Authorize(context.Background(), get, nil, p1, ActionList); err != nil {
			t.Fatalf("GET %d: %v", i, err)
		}
	}
	// A new signature of the same request, a second later, is fine.
	r2 := signedRequest(http.MethodPut, pathOf(p1), modifyBody, rootAK, rootSK)
	Sign(r2, []byte(modifyBody), rootAK, rootSK, t0.Add(time.Second))
	if _, err := v.Authorize(context.Background(), r2, []byte(modifyBody), p1, ActionModify); err != nil {
		t.Fatalf("re-signed: %v", err)
	}
}

func TestVerifierRefusedRequestsAreNotRemembered(t *testing.T) {
	v, _, _, _ := newTestVerifier(t)
	r := signedRequest(http.MethodPut, pathOf(p1), modifyBody, listAK, listSK)
	if _, err := v.Authorize(context.Background(), r, []byte("tampered"), p1, ActionModify); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("tampered: %v", err)
	}
	if _, err := v.Authorize(context.Background(), r, []byte(modifyBody), p1, ActionModify); !errors.Is(err, ErrForbidden) {
		t.Fatalf("genuine, without permission: %v, want ErrForbidden", err)
	}
}

func TestVerifierSkew(t *testing.T) {
	tests := []struct {
		name string
		now  time.Time
		want error
	}{
		{"exactly 15 min late", t0.Add(15 * time.Minute), nil},
		{"just beyond late", t0.Add(15*time.Minute + time.Nanosecond), ErrUnauthenticated},
		{"a second beyond late", t0.Add(15*time.Minute + time.Second), ErrUnauthenticated},
		{"exactly 15 min early", t0.Add(-15 * time.Minute), nil},
		{"just beyond early", t0.Add(-15*time.Minute - time.Nanosecond), ErrUnauthenticated},
		{"a day late", t0.Add(24 * time.Hour), ErrUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, _, _, clk := newTestVerifier(t)
			clk.set(tt.now)
			r := signedRequest(http.MethodPut, pathOf(p1), modifyBody, rootAK, rootSK)
			_, err := v.Authorize(context.Background(), r, []byte(modifyBody), p1, ActionModify)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Authorize = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestVerifierPermissions(t *testing.T) {
	tests := []struct {
		name     string
		ak, sk   string
		project  string
		action   string
		revoke   bool
		storeErr error
		want     error
	}{
		{"root, own project", rootAK, rootSK, p1, ActionDelete, false, nil, nil},
		{"root, other account's project", rootAK, rootSK, pB, ActionList, false, nil, ErrForbidden},
		{"root, unknown project", rootAK, rootSK, "nosuchproject", ActionList, false, nil, ErrForbidden},
		{"user with live:*:*", userAK, userSK, p2, ActionCreate, false, nil, nil},
		{"limited user, its project, its action", listAK, listSK, p2, ActionList, false, nil, nil},
		{"limited user, other action", listAK, listSK, p2, ActionCreate, false, nil, ErrForbidden},
		{"limited user, other project of its account", listAK, listSK, p1, ActionList, false, nil, ErrForbidden},
		{"revoked key", userAK, userSK, p1, ActionList, true, nil, ErrUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, l, _, _ := newTestVerifier(t)
			if tt.revoke {
				l.revoke(tt.ak)
			}
			r := httptest.NewRequest(http.MethodGet, pathOf(tt.project), nil)
			r.Header.Set("X-Project-Id", tt.project)
			Sign(r, nil, tt.ak, tt.sk, t0)
			c, err := v.Authorize(context.Background(), r, nil, tt.project, tt.action)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Authorize = %v, want %v", err, tt.want)
			}
			if err == nil && c.AccessKey != tt.ak {
				t.Fatalf("caller %+v", c)
			}
		})
	}
}

func TestVerifierStoreFailureIsNotAnAuthAnswer(t *testing.T) {
	v, l, _, _ := newTestVerifier(t)
	l.err = errors.New("disk on fire")
	r := httptest.NewRequest(http.MethodGet, pathOf(p1), nil)
	Sign(r, nil, rootAK, rootSK, t0)
	_, err := v.Authorize(context.Background(), r, nil, p1, ActionList)
	if err == nil || errors.Is(err, ErrUnauthenticated) || errors.Is(err, ErrForbidden) {
		t.Fatalf("Authorize = %v, want a plain error", err)
	}
}

func TestVerifierToken(t *testing.T) {
	tokenRequest := func(token string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, pathOf(p1), nil)
		r.Header.Set(headerToken, token)
		return r
	}
	otherKeys, err := NewKeyring(bytes.Repeat([]byte{8}, 32))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		issue   func(k *Keyring) string
		at      time.Time
		project string
		revoke  bool
		want    error
	}{
		{"valid", nil, t0.Add(time.Hour), p1, false, nil},
		{"valid used twice is fine (tokens are bearer)", nil, t0, p1, false, nil},
		{"last second before expiry", nil, t0.Add(24*time.Hour - time.Second), p1, false, nil},
		{"expired", nil, t0.Add(24 * time.Hour), p1, false, ErrUnauthenticated},
		{"other project", nil, t0, p2, false, ErrForbidden},
		{"revoked key", nil, t0, p1, true, ErrUnauthenticated},
		{"unknown key", func(k *Keyring) string {
			tok, _, _ := k.IssueToken("NOSUCHKEYAAAAAAAAAAA", p1, t0, 0)
			return tok
		}, t0, p1, false, ErrUnauthenticated},
		{"other server's key", func(*Keyring) string {
			tok, _, _ := otherKeys.IssueToken(userAK, p1, t0, 0)
			return tok
		}, t0, p1, false, ErrUnauthenticated},
		{"garbage", func(*Keyring) string { return "not a token" }, t0, p1, false, ErrUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, l, k, clk := newTestVerifier(t)
			token, expires, err := k.IssueToken(userAK, p1, t0, 0)
			if err != nil || !expires.Equal(t0.Add(DefaultTokenTTL)) {
				t.Fatalf("IssueToken: %v, expires %v", err, expires)
			}
			if tt.issue != nil {
				token = tt.issue(k)
			}
			if tt.revoke {
				l.revoke(userAK)
			}
			clk.set(tt.at)
			for range 2 {
				c, err := v.Authorize(context.Background(), tokenRequest(token), nil, tt.project, ActionList)
				if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
					t.Fatalf("Authorize = %v, want %v", err, tt.want)
				}
				if err == nil && (c.AccessKey != userAK || c.UserID != "user-a") {
					t.Fatalf("caller %+v", c)
				}
				if err != nil && strings.Contains(err.Error(), token) {
					t.Fatalf("error quotes the token: %v", err)
				}
			}
		})
	}
}

// Changing any single byte of a token makes it invalid.
func TestVerifierTokenForged(t *testing.T) {
	v, _, k, _ := newTestVerifier(t)
	token, _, err := k.IssueToken(userAK, p1, t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.="
	for i := range len(token) {
		for _, c := range []byte(chars) {
			if token[i] == c {
				continue
			}
			forged := token[:i] + string(c) + token[i+1:]
			r := httptest.NewRequest(http.MethodGet, pathOf(p1), nil)
			r.Header.Set(headerToken, forged)
			if _, err := v.Authorize(context.Background(), r, nil, p1, ActionList); !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("byte %d set to %q: %v, want ErrUnauthenticated", i, c, err)
			}
		}
	}
}

func TestVerifierTokenProjectHeader(t *testing.T) {
	v, _, k, _ := newTestVerifier(t)
	token, _, err := k.IssueToken(rootAK, p1, t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, pathOf(p1), nil)
	r.Header.Set(headerToken, token)
	r.Header.Set("X-Project-Id", p2)
	if _, err := v.Authorize(context.Background(), r, nil, p1, ActionList); !errors.Is(err, ErrForbidden) {
		t.Fatalf("Authorize = %v, want ErrForbidden", err)
	}
}

func TestReplayCachePrunesAndIsBounded(t *testing.T) {
	c := newReplayCache(3)
	sig := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	for i := range byte(3) {
		if fresh, room := c.add(sig(i), t0.Add(maxSkew), t0); !fresh || !room {
			t.Fatalf("add %d: fresh %v room %v", i, fresh, room)
		}
	}
	if fresh, _ := c.add(sig(1), t0.Add(maxSkew), t0); fresh {
		t.Fatal("duplicate reported fresh")
	}
	if _, room := c.add(sig(9), t0.Add(maxSkew), t0); room {
		t.Fatal("full cache took another signature")
	}
	// Still inside the window at its last second: nothing forgotten.
	if fresh, _ := c.add(sig(1), t0.Add(maxSkew), t0.Add(maxSkew)); fresh {
		t.Fatal("forgot a signature still inside its window")
	}
	// Past it, everything is pruned, and a clock stepping back does not
	// bring back what was pruned nor un-prune.
	if fresh, room := c.add(sig(9), t0.Add(40*time.Minute), t0.Add(maxSkew+time.Second)); !fresh || !room {
		t.Fatalf("after the window: fresh %v room %v", fresh, room)
	}
	if len(c.seen) != 1 || len(c.queue) != 1 {
		t.Fatalf("after pruning: %d seen, %d queued, want 1", len(c.seen), len(c.queue))
	}
	if fresh, _ := c.add(sig(9), t0.Add(40*time.Minute), t0); fresh {
		t.Fatal("clock stepping back forgot a signature")
	}
}
