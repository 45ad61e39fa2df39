package rtmp

import (
	"errors"
	"fmt"
	"strings"

	"github.com/bluenviron/gortmplib/pkg/amf0"
)

// command is a decoded AMF0 command message: name, transaction id, command
// object and further arguments.
type command struct {
	name string
	txn  float64
	args []any // the command object (often null) first, then the arguments
}

// maxCommandSize bounds the AMF0 we decode. The decoder recurses into nested
// objects and arrays; commands are a few hundred bytes, and a bound keeps a
// hostile server from making us recurse millions of levels deep.
const maxCommandSize = 64 << 10

func parseCommand(body []byte) (command, error) {
	if len(body) > maxCommandSize {
		return command{}, fmt.Errorf("command of %d bytes exceeds %d", len(body), maxCommandSize)
	}
	data, err := amf0.Unmarshal(body)
	if err != nil {
		return command{}, fmt.Errorf("decode command: %w", err)
	}
	if len(data) < 2 {
		return command{}, errors.New("decode command: fewer than 2 values")
	}
	name, ok := data[0].(string)
	if !ok {
		return command{}, errors.New("decode command: name is not a string")
	}
	txn, ok := data[1].(float64)
	if !ok {
		return command{}, fmt.Errorf("decode command %s: transaction id is not a number", name)
	}
	return command{name: name, txn: txn, args: data[2:]}, nil
}

func encodeCommand(name string, txn float64, args ...any) ([]byte, error) {
	data := append(amf0.Data{name, txn}, args...)
	return data.Marshal()
}

// status is the information object of onStatus, _result and _error.
type status struct {
	level, code, description string
}

// statusOf finds the information object among a command's arguments: the
// first object or ECMA array that has a "code" or "level" entry.
func statusOf(cmd command) (status, bool) {
	for _, a := range cmd.args {
		var obj amf0.Object
		switch v := a.(type) {
		case amf0.Object:
			obj = v
		case amf0.ECMAArray:
			obj = amf0.Object(v)
		default:
			continue
		}
		level, okLevel := obj.GetString("level")
		code, okCode := obj.GetString("code")
		if !okLevel && !okCode {
			continue
		}
		desc, _ := obj.GetString("description")
		return status{level: level, code: code, description: desc}, true
	}
	return status{}, false
}

func (s status) isError() bool { return strings.EqualFold(s.level, "error") }

func (s status) String() string {
	var b strings.Builder
	b.WriteString(s.code)
	if b.Len() == 0 {
		b.WriteString("(no code)")
	}
	if s.level != "" {
		b.WriteString(" level=" + s.level)
	}
	if s.description != "" {
		d := s.description
		if len(d) > 200 {
			d = d[:200] + "..."
		}
		b.WriteString(fmt.Sprintf(" description=%q", d))
	}
	return b.String()
}

// StatusError is a refusal or failure the server reported with an
// onStatus or _error message.
type StatusError struct {
	Command     string // "connect", "play", "publish", "createStream"
	Level       string
	Code        string // e.g. "NetStream.Publish.BadName"
	Description string // redacted: never echoes the URL's credentials
}

func (e *StatusError) Error() string {
	s := status{level: e.Level, code: e.Code, description: e.Description}
	return e.Command + " refused: " + s.String()
}
