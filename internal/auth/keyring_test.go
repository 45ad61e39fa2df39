package auth

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestLoadKeyringCreatesKeyFile(t *testing.T) {
	t.Setenv(EnvSecretKey, "")
	os.Unsetenv(EnvSecretKey)
	dir := filepath.Join(t.TempDir(), "data")
	k1, err := LoadKeyring(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, KeyFileName)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || st.Size() != 32 {
		t.Fatalf("key file mode %v size %d", st.Mode().Perm(), st.Size())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("data directory holds %d entries, want only the key file", len(entries))
	}
	sealed, err := k1.Seal([]byte("sk"))
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadKeyring(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := k2.Open(sealed); err != nil || string(got) != "sk" {
		t.Fatalf("reloaded keyring: %q, %v", got, err)
	}
}

func TestLoadKeyringRefusesBadKeyFile(t *testing.T) {
	t.Setenv(EnvSecretKey, "")
	os.Unsetenv(EnvSecretKey)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, KeyFileName), []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyring(dir); err == nil {
		t.Fatal("accepted a 5-byte key file")
	}
}

func TestLoadKeyringFromEnv(t *testing.T) {
	key := bytes.Repeat([]byte{0xab}, 32)
	dir := t.TempDir()
	t.Setenv(EnvSecretKey, base64.StdEncoding.EncodeToString(key))
	fromEnv, err := LoadKeyring(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, KeyFileName)); !os.IsNotExist(err) {
		t.Fatalf("key file created although the key came from the environment: %v", err)
	}
	direct, err := NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := fromEnv.Seal([]byte("sk"))
	if got, err := direct.Open(sealed); err != nil || string(got) != "sk" {
		t.Fatalf("env key differs from the same key given directly: %v", err)
	}
	for _, bad := range []string{"not base64!", base64.StdEncoding.EncodeToString(key[:16]), ""} {
		t.Setenv(EnvSecretKey, bad)
		if _, err := LoadKeyring(dir); err == nil {
			t.Errorf("accepted %s=%q", EnvSecretKey, bad)
		}
	}
}

func TestSealOpen(t *testing.T) {
	k := testKeyring(t)
	secret := []byte("userSecretuserSecretuserSecretuserSecret")
	a, err := k.Seal(secret)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := k.Seal(secret)
	if bytes.Equal(a, b) {
		t.Fatal("two seals of one secret are equal (nonce reused)")
	}
	if bytes.Contains(a, secret) {
		t.Fatal("sealed form contains the secret")
	}
	if got, err := k.Open(a); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	for i := range a {
		bad := bytes.Clone(a)
		bad[i] ^= 1
		if _, err := k.Open(bad); err == nil {
			t.Fatalf("Open accepted a flip at byte %d", i)
		}
	}
	if _, err := k.Open(a[:10]); err == nil {
		t.Fatal("Open accepted a truncated secret")
	}
	other, _ := NewKeyring(bytes.Repeat([]byte{9}, 32))
	if _, err := other.Open(a); err == nil {
		t.Fatal("another key opened the secret")
	}
}

// Each purpose has its own key derived from the master key.
func TestKeyringKeysAreSeparate(t *testing.T) {
	master := bytes.Repeat([]byte{7}, 32)
	k := testKeyring(t)
	sealKey, err := hkdf.Key(sha256.New, master, nil, sealKeyInfo, 32)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(k.tokenKey, master) || bytes.Equal(k.tokenKey, sealKey) || bytes.Equal(sealKey, master) {
		t.Fatal("keys are shared between purposes")
	}
}

func TestIssueTokenTTL(t *testing.T) {
	k := testKeyring(t)
	_, exp, err := k.IssueToken("AK", "p", t0, 0)
	if err != nil || !exp.Equal(t0.Add(24*time.Hour)) {
		t.Fatalf("default ttl: %v, %v", exp, err)
	}
	tok, exp, err := k.IssueToken("AK", "p", t0, time.Minute)
	if err != nil || !exp.Equal(t0.Add(time.Minute)) {
		t.Fatalf("1m ttl: %v, %v", exp, err)
	}
	if _, err := k.verifyToken(tok, t0.Add(time.Minute-time.Nanosecond)); err != nil {
		t.Fatalf("just before expiry: %v", err)
	}
	if _, err := k.verifyToken(tok, t0.Add(time.Minute)); err == nil {
		t.Fatal("accepted at expiry")
	}
	if _, _, err := k.IssueToken("", "p", t0, 0); err == nil {
		t.Fatal("issued a token without an access key")
	}
	if _, _, err := k.IssueToken("AK", "", t0, 0); err == nil {
		t.Fatal("issued a token without a project")
	}
}
