package rtmp

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// silentServer accepts connections and never answers.
func silentServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

func TestSetupCancelledByContext(t *testing.T) {
	t.Parallel()
	addr := silentServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Play(ctx, "rtmp://"+addr+"/live/src", Options{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("returned after %v", d)
	}
}

func TestSetupTimeout(t *testing.T) {
	t.Parallel()
	addr := silentServer(t)
	start := time.Now()
	_, err := Publish(context.Background(), "rtmp://"+addr+"/live/src", Options{ReadTimeout: 300 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "setup timed out") {
		t.Fatalf("got %v, want a setup timeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("returned after %v", d)
	}
}

func TestErrorsAreRedacted(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now

	for _, raw := range []string{
		"rtmp://bob:hunter22@" + addr + "/live/abcdefghijklmnop?token=tok123456&sign=sig7890",
		"rtmp://bob:hunter22@" + addr + "/live",                       // no stream
		"http://bob:hunter22@" + addr + "/live/x?token=tok123456",     // wrong scheme
		"rtmp://bob:hunter22@" + addr + ":99999/live/x?key=tok123456", // bad port
		"rtmp://bob:hunter22@host%zz/live/x?key=tok123456",            // unparsable
	} {
		for _, open := range []func(context.Context, string, Options) (*Conn, error){Play, Publish} {
			_, err := open(context.Background(), raw, Options{ReadTimeout: time.Second})
			if err == nil {
				t.Fatalf("%s: no error", raw)
			}
			for _, secret := range []string{"hunter22", "tok123456", "sig7890", "abcdefghijklmnop"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error reveals %q: %v", secret, err)
				}
			}
			if !strings.HasPrefix(err.Error(), "rtmp play ") && !strings.HasPrefix(err.Error(), "rtmp publish ") {
				t.Errorf("error lacks context: %v", err)
			}
		}
	}
}
