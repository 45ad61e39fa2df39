package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const (
	// EnvSecretKey, when set, holds the master key (base64 of 32 bytes) and
	// the key file is neither read nor created.
	EnvSecretKey = "LIVERELAY_SECRET_KEY"
	// KeyFileName is the master key's file in the data directory: 32 raw
	// bytes, mode 0600.
	KeyFileName = "secret.key"
	// DefaultTokenTTL is a token's lifetime when IssueToken is given none.
	DefaultTokenTTL = 24 * time.Hour

	masterKeyLen = 32

	// Each use of the master key gets its own derived key.
	sealKeyInfo  = "liverelay/auth/seal-secret/v1"
	tokenKeyInfo = "liverelay/auth/token-mac/v1"

	sealVersion = 1
	tokenPrefix = "lr1."
	maxTokenLen = 2048
)

var tokenEncoding = base64.RawURLEncoding.Strict()

// Keyring holds the keys derived from the server's master key: one seals
// access-key secrets at rest (AES-256-GCM), one signs tokens (HMAC-SHA256).
type Keyring struct {
	seal     cipher.AEAD
	tokenKey []byte
}

// LoadKeyring returns the keyring of the master key in env
// LIVERELAY_SECRET_KEY (base64) or else in <dataDir>/secret.key, which is
// created with 32 random bytes when absent.
func LoadKeyring(dataDir string) (*Keyring, error) {
	if v, ok := os.LookupEnv(EnvSecretKey); ok {
		key, err := decodeEnvKey(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvSecretKey, err)
		}
		return NewKeyring(key)
	}
	key, err := loadOrCreateKeyFile(filepath.Join(dataDir, KeyFileName))
	if err != nil {
		return nil, err
	}
	return NewKeyring(key)
}

// NewKeyring returns the keyring of a 32-byte master key.
func NewKeyring(master []byte) (*Keyring, error) {
	if len(master) != masterKeyLen {
		return nil, fmt.Errorf("master key has %d bytes, want %d", len(master), masterKeyLen)
	}
	sealKey, err := hkdf.Key(sha256.New, master, nil, sealKeyInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("derive sealing key: %w", err)
	}
	tokenKey, err := hkdf.Key(sha256.New, master, nil, tokenKeyInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("derive token key: %w", err)
	}
	block, err := aes.NewCipher(sealKey)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Keyring{seal: aead, tokenKey: tokenKey}, nil
}

func decodeEnvKey(v string) ([]byte, error) {
	v = strings.TrimSpace(v)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err := enc.DecodeString(v); err == nil {
			if len(key) != masterKeyLen {
				return nil, fmt.Errorf("decodes to %d bytes, want %d", len(key), masterKeyLen)
			}
			return key, nil
		}
	}
	return nil, errors.New("not base64")
}

// loadOrCreateKeyFile reads the key file, or writes a new one next to it
// and links it into place, so no process ever sees a half-written key and
// two processes starting at once end up with the same key.
func loadOrCreateKeyFile(path string) ([]byte, error) {
	key, err := readKeyFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".secret.key-*") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("create key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	key = make([]byte, masterKeyLen)
	rand.Read(key)
	_, err = tmp.Write(key)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("write key file: %w", err)
	}
	// Link, unlike rename, never replaces a key another process just made.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readKeyFile(path)
		}
		if err := os.Rename(tmp.Name(), path); err != nil { // file systems without hard links
			return nil, fmt.Errorf("install key file: %w", err)
		}
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return key, nil
}

func readKeyFile(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	if len(key) != masterKeyLen {
		return nil, fmt.Errorf("key file %s has %d bytes, want %d", path, len(key), masterKeyLen)
	}
	return key, nil
}

// Seal encrypts a secret for storage: a version byte, the GCM nonce, then
// the ciphertext and tag.
func (k *Keyring) Seal(secret []byte) ([]byte, error) {
	out := make([]byte, 1+k.seal.NonceSize(), 1+k.seal.NonceSize()+len(secret)+k.seal.Overhead())
	out[0] = sealVersion
	nonce := out[1:]
	rand.Read(nonce)
	return k.seal.Seal(out, nonce, secret, out[:1]), nil
}

// Open decrypts what Seal returned.
func (k *Keyring) Open(sealed []byte) ([]byte, error) {
	n := k.seal.NonceSize()
	if len(sealed) < 1+n+k.seal.Overhead() {
		return nil, errors.New("sealed secret too short")
	}
	if sealed[0] != sealVersion {
		return nil, fmt.Errorf("sealed secret version %d unknown", sealed[0])
	}
	secret, err := k.seal.Open(nil, sealed[1:1+n], sealed[1+n:], sealed[:1])
	if err != nil {
		return nil, errors.New("sealed secret does not open with this key")
	}
	return secret, nil
}

// tokenClaims is a token's payload; it is readable by anyone who holds the
// token, so it names the access key, never its secret.
type tokenClaims struct {
	AccessKey string `json:"ak"`
	ProjectID string `json:"project_id"`
	IssuedAt  int64  `json:"iat"`
	Expires   int64  `json:"exp"`
}

// IssueToken returns a token for X-Auth-Token that stands for accessKey in
// projectID until expires (now+ttl, DefaultTokenTTL when ttl <= 0). Whoever
// issues it checks first that the key may use the project; every request
// then checks again that the key is not revoked and has the permission.
func (k *Keyring) IssueToken(accessKey, projectID string, now time.Time, ttl time.Duration) (token string, expires time.Time, err error) {
	if !validAccessKey(accessKey) || projectID == "" {
		return "", time.Time{}, errors.New("token needs an access key and a project")
	}
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	expires = time.Unix(now.Add(ttl).Unix(), 0).UTC()
	payload, err := json.Marshal(tokenClaims{
		AccessKey: accessKey,
		ProjectID: projectID,
		IssuedAt:  now.Unix(),
		Expires:   expires.Unix(),
	})
	if err != nil {
		return "", time.Time{}, err
	}
	signed := tokenPrefix + tokenEncoding.EncodeToString(payload)
	token = signed + "." + tokenEncoding.EncodeToString(k.tokenMAC(signed))
	if len(token) > maxTokenLen {
		return "", time.Time{}, errors.New("token too long")
	}
	return token, expires, nil
}

func (k *Keyring) tokenMAC(signed string) []byte {
	mac := hmac.New(sha256.New, k.tokenKey)
	mac.Write([]byte(signed))
	return mac.Sum(nil)
}

// verifyToken returns the claims of a token this keyring issued that has
// not expired at now. Its errors never quote the token.
func (k *Keyring) verifyToken(token string, now time.Time) (*tokenClaims, error) {
	if len(token) > maxTokenLen || !strings.HasPrefix(token, tokenPrefix) {
		return nil, errors.New("malformed token")
	}
	dot := strings.LastIndexByte(token, '.')
	signed, macText := token[:dot], token[dot+1:]
	got, err := tokenEncoding.DecodeString(macText)
	if err != nil || !hmac.Equal(got, k.tokenMAC(signed)) {
		return nil, errors.New("token signature mismatch")
	}
	payload, err := tokenEncoding.DecodeString(strings.TrimPrefix(signed, tokenPrefix))
	if err != nil {
		return nil, errors.New("malformed token payload")
	}
	var c tokenClaims
	if err := json.Unmarshal(payload, &c); err != nil || c.AccessKey == "" || c.ProjectID == "" {
		return nil, errors.New("malformed token payload")
	}
	if !now.Before(time.Unix(c.Expires, 0)) {
		return nil, errors.New("token expired")
	}
	return &c, nil
}
