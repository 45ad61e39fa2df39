package task

import (
	"slices"
	"testing"
)

func TestDestinationKey(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"rtmp://Ingest.Example.COM/live/s?token=1", "rtmp://ingest.example.com:1935/live/s"},
		{"RTMP://h:1935/Live/S", "rtmp://h:1935/Live/S"},
		{"rtmp://h:01935/live/s", "rtmp://h:1935/live/s"},
		{"rtmp://h:1936/live/s", "rtmp://h:1936/live/s"},
		{"rtmps://h/live/s", "rtmps://h:443/live/s"},
		{"rtmp://user:secret@h/live/s#frag", "rtmp://h:1935/live/s"},
		{"rtmp://[::1]/app/more/s", "rtmp://[::1]:1935/app/more/s"},
		{"rtmp://h/live/s%20x", "rtmp://h:1935/live/s x"},
		{"not a url", "not a url"},
	} {
		if got := DestinationKey(c.in); got != c.want {
			t.Errorf("DestinationKey(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	// Two spellings of one stream share a key; another stream does not.
	if DestinationKey("rtmp://h/live/s") != DestinationKey("rtmp://H:1935/live/s?k=v") {
		t.Error("same stream, different keys")
	}
	if DestinationKey("rtmp://h/live/s") == DestinationKey("rtmp://h/live/S") ||
		DestinationKey("rtmp://h/live/s") == DestinationKey("rtmps://h/live/s") {
		t.Error("different streams, same key")
	}
}

func TestOutboundURLs(t *testing.T) {
	task := &Task{
		SourceURLs:       []string{"https://m.example.com/a.mp4", "file:///srv/media/b.mp4", "FILE:///srv/media/c.mp4"},
		BackupSourceURLs: []string{"rtmp://b.example.com/live/bak"},
		CallbackURL:      "http://callback.example.com",
	}
	want := []string{"https://m.example.com/a.mp4", "rtmp://b.example.com/live/bak", "http://callback.example.com"}
	if got := task.OutboundURLs(); !slices.Equal(got, want) {
		t.Fatalf("OutboundURLs() = %q, want %q", got, want)
	}
	if got := (&Task{SourceURLs: []string{"rtmp://h/live/s"}}).OutboundURLs(); !slices.Equal(got, []string{"rtmp://h/live/s"}) {
		t.Fatalf("without callback: %q", got)
	}
}
