package api

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkListPage measures one list call of a page of 100 through the
// whole handler (routing, store, event backlog, JSON), without the network.
func BenchmarkListPage(b *testing.B) {
	e := newEnv(b, 1000)
	h := e.srv.Config.Handler
	for n := range 150 {
		body := strings.Replace(seedExample(), `"stream_name" : "test"`, fmt.Sprintf(`"stream_name" : "s%d"`, n), 1)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, taskPath(project), strings.NewReader(body)))
		if rec.Code != http.StatusOK {
			b.Fatalf("create %d: %d %s", n, rec.Code, rec.Body)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, taskPath(project)+"?limit=100", nil))
		if rec.Code != http.StatusOK || rec.Body.Len() < 100*500 {
			b.Fatalf("list: %d, %d bytes", rec.Code, rec.Body.Len())
		}
	}
}
