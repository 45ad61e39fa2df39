package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// A PostgreSQL URL's password never reaches an error, whatever fails: the
// server is not there, or the URL is malformed.
func TestStoreURLPasswordNotInErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there now
	const secret = "Sup3rSecretPw"
	for _, u := range []string{
		fmt.Sprintf("postgres://liverelay:%s@127.0.0.1:%d/liverelay?connect_timeout=2", secret, port),
		fmt.Sprintf("postgresql://liverelay:%s@127.0.0.1:%d/liverelay?sslmode=bogus", secret, port),
		"mysql://liverelay:" + secret + "@127.0.0.1/x",
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := openStore(ctx, u, t.TempDir(), false)
		cancel()
		if err == nil {
			t.Fatalf("openStore(%s) succeeded", u)
		}
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("the error shows the password: %v", err)
		}
		var stderr bytes.Buffer
		err = nodes([]string{"--store", u}, &bytes.Buffer{}, &stderr)
		if err == nil || strings.Contains(err.Error(), secret) || strings.Contains(stderr.String(), secret) {
			t.Fatalf("liverelay nodes --store %s: %v %s", u, err, stderr.String())
		}
	}
}
