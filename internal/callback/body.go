package callback

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// bodyWithSeq returns the stored payload object with "seq" added after
// "event_time", where API.md shows it (first when there is no event_time).
// The rest of the bytes are kept as they are. A payload that is not one
// JSON object, or already has a seq, is an error: such an event can never
// be sent as the API describes it.
func bodyWithSeq(payload []byte, seq int64) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("payload is not a JSON object")
	}
	at := dec.InputOffset() // just after '{'
	afterField, empty := false, true
	for dec.More() {
		empty = false
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("payload: %w", err)
		}
		key, _ := tok.(string)
		if key == "seq" {
			return nil, errors.New(`payload already has a "seq"`)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("payload: %w", err)
		}
		if key == "event_time" {
			at, afterField = dec.InputOffset(), true
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, fmt.Errorf("payload: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("payload: data after the JSON object")
	}

	field := `"seq":` + strconv.FormatInt(seq, 10)
	switch {
	case afterField:
		field = "," + field
	case !empty:
		field += ","
	}
	out := make([]byte, 0, len(payload)+len(field))
	out = append(out, payload[:at]...)
	out = append(out, field...)
	return append(out, payload[at:]...), nil
}
