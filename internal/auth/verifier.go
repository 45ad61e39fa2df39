package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/liverelay/liverelay/internal/store"
)

// Lookup is what the Verifier reads from the store; store.Store satisfies it.
type Lookup interface {
	GetCredential(ctx context.Context, accessKey string) (*store.Credential, error)
	GetProject(ctx context.Context, id string) (*store.Project, error)
}

// Verifier is the Authorizer for SDK-HMAC-SHA256 signatures and X-Auth-Token
// tokens. It is safe for concurrent use; its replay cache is per process,
// so every replica of a cluster keeps its own.
type Verifier struct {
	lookup Lookup
	keys   *Keyring
	now    func() time.Time
	replay *replayCache
}

var _ Authorizer = (*Verifier)(nil)

// NewVerifier returns a Verifier reading credentials and projects from l,
// opening secrets and tokens with k, and reading the time from now
// (time.Now when nil).
func NewVerifier(l Lookup, k *Keyring, now func() time.Time) *Verifier {
	if now == nil {
		now = time.Now
	}
	return &Verifier{lookup: l, keys: k, now: now, replay: newReplayCache(replayCapacity)}
}

// authError is ErrUnauthenticated or ErrForbidden with the reason, for logs
// only: the API answers with the bare kind. Reasons never hold a secret, a
// signature or a token.
type authError struct {
	kind   error
	reason string
}

func (e *authError) Error() string { return e.kind.Error() + ": " + e.reason }
func (e *authError) Unwrap() error { return e.kind }

func unauthenticated(format string, args ...any) error {
	return &authError{kind: ErrUnauthenticated, reason: fmt.Sprintf(format, args...)}
}

func forbidden(format string, args ...any) error {
	return &authError{kind: ErrForbidden, reason: fmt.Sprintf(format, args...)}
}

// Authorize authenticates r by its Authorization signature or its
// X-Auth-Token (not both), then checks that the caller may perform action
// on projectID, the project named in the path. body is the raw body as
// received. Errors wrap ErrUnauthenticated or ErrForbidden; any other error
// is the store's or the keyring's, and means the server cannot decide.
func (v *Verifier) Authorize(ctx context.Context, r *http.Request, body []byte, projectID, action string) (*Caller, error) {
	cred, err := v.authenticate(ctx, r, body, projectID)
	if err != nil {
		return nil, err
	}
	for _, id := range r.Header.Values(headerProjectID) {
		if id != projectID {
			return nil, forbidden("%s differs from the path's project", headerProjectID)
		}
	}
	p, err := v.lookup.GetProject(ctx, projectID)
	if errors.Is(err, store.ErrProjectNotFound) || errors.Is(err, store.ErrNotFound) {
		p, err = nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up project: %w", err)
	}
	if !Allowed(cred, projectID, p, action) {
		return nil, forbidden("access key %s may not %s in project %q", cred.AccessKey, action, projectID)
	}
	return &Caller{UserID: cred.UserID, AccountID: cred.AccountID, AccessKey: cred.AccessKey, Root: cred.Root}, nil
}

func (v *Verifier) authenticate(ctx context.Context, r *http.Request, body []byte, projectID string) (*store.Credential, error) {
	sigs, tokens := r.Header.Values("Authorization"), r.Header.Values(headerToken)
	switch {
	case len(sigs) > 0 && len(tokens) > 0:
		return nil, unauthenticated("both Authorization and %s sent", headerToken)
	case len(sigs) == 1:
		return v.verifySignature(ctx, r, body, sigs[0])
	case len(tokens) == 1:
		return v.verifyToken(ctx, tokens[0], projectID)
	case len(sigs) > 1 || len(tokens) > 1:
		return nil, unauthenticated("credentials header repeated")
	default:
		return nil, unauthenticated("no credentials")
	}
}

func (v *Verifier) verifySignature(ctx context.Context, r *http.Request, body []byte, authorization string) (*store.Credential, error) {
	ak, signedHeaders, sig, err := ParseAuthorization(authorization)
	if err != nil {
		return nil, unauthenticated("authorization: %v", err)
	}
	if !slices.Contains(signedHeaders, "x-sdk-date") {
		return nil, unauthenticated("x-sdk-date not signed")
	}
	dates := r.Header.Values(headerDate)
	if len(dates) != 1 {
		return nil, unauthenticated("want one %s", headerDate)
	}
	date, err := time.Parse(dateFormat, dates[0])
	if err != nil {
		return nil, unauthenticated("malformed %s", headerDate)
	}
	now := v.now()
	if skew := now.Sub(date); skew > maxSkew || skew < -maxSkew {
		return nil, unauthenticated("%s %s is more than %s from the server clock", headerDate, dates[0], maxSkew)
	}
	if err := checkPayloadHeader(r, body); err != nil {
		return nil, err
	}
	canonical, err := canonicalRequest(r, body, signedHeaders)
	if err != nil {
		return nil, unauthenticated("canonical request: %v", err)
	}
	cred, err := v.credential(ctx, ak)
	if err != nil {
		return nil, err
	}
	sk, err := v.keys.Open(cred.SecretKey)
	if err != nil {
		return nil, fmt.Errorf("open secret of access key %s: %w", ak, err)
	}
	want := signString(sk, stringToSign(dates[0], canonical))
	clear(sk)
	if !hmac.Equal(want, sig) {
		return nil, unauthenticated("signature mismatch for access key %s", ak)
	}
	if safeMethod(r.Method) {
		return cred, nil
	}
	switch fresh, room := v.replay.add(sig, date.Add(maxSkew), now); {
	case !fresh:
		return nil, unauthenticated("signature replayed for access key %s", ak)
	case !room:
		return nil, unauthenticated("replay cache full")
	}
	return cred, nil
}

// safeMethod reports whether a request changes nothing, so that replaying
// it gains nothing and it skips the replay cache. The SDKs sign with a date
// to the second and leave Content-Type unsigned, so a client that lists twice
// in one second sends the same signature twice; refusing the second would
// break polling clients that work against the cloud.
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead
}

// checkPayloadHeader refuses an X-Sdk-Content-Sha256 that would leave the
// body unsigned. The SDKs send UNSIGNED-PAYLOAD only with bodies that are not
// JSON, which this API never takes, so it is accepted only with no body.
func checkPayloadHeader(r *http.Request, body []byte) error {
	values := r.Header.Values(headerContentSHA256)
	if len(values) == 0 {
		return nil
	}
	if len(values) > 1 {
		return unauthenticated("%s repeated", headerContentSHA256)
	}
	if values[0] == unsignedPayload && len(body) == 0 {
		return nil
	}
	sum := sha256.Sum256(body)
	if values[0] != hex.EncodeToString(sum[:]) {
		return unauthenticated("%s does not match the body", headerContentSHA256)
	}
	return nil
}

func (v *Verifier) verifyToken(ctx context.Context, token, projectID string) (*store.Credential, error) {
	claims, err := v.keys.verifyToken(token, v.now())
	if err != nil {
		return nil, unauthenticated("token: %v", err)
	}
	cred, err := v.credential(ctx, claims.AccessKey)
	if err != nil {
		return nil, err
	}
	if claims.ProjectID != projectID {
		return nil, forbidden("token of access key %s is for another project", claims.AccessKey)
	}
	return cred, nil
}

// credential returns the live credential of an access key.
func (v *Verifier) credential(ctx context.Context, ak string) (*store.Credential, error) {
	cred, err := v.lookup.GetCredential(ctx, ak)
	switch {
	case errors.Is(err, store.ErrCredentialUnknown) || errors.Is(err, store.ErrNotFound) || err == nil && cred == nil:
		return nil, unauthenticated("unknown access key %s", ak)
	case err != nil:
		return nil, fmt.Errorf("look up access key %s: %w", ak, err)
	case cred.Revoked:
		return nil, unauthenticated("access key %s revoked", ak)
	}
	return cred, nil
}
