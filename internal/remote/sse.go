package remote

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// maxSSELine bounds one line of the upstream event stream (a transcript
// line of 64 KiB grows under JSON escaping).
const maxSSELine = 2 << 20

var errLineTooLong = errors.New("remote: event stream line too long")

// sseReader reads Server-Sent Events frames.
type sseReader struct {
	br     *bufio.Reader
	onLine func() // if set, called for every line read (heartbeats included)
}

func newSSEReader(r io.Reader) *sseReader { return &sseReader{br: bufio.NewReaderSize(r, 64<<10)} }

// line reads one line without its end of line.
func (r *sseReader) line() ([]byte, error) {
	var buf []byte
	for {
		chunk, err := r.br.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > maxSSELine {
			return nil, errLineTooLong
		}
		if err == nil {
			if r.onLine != nil {
				r.onLine()
			}
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return nil, err
	}
	buf = bytes.TrimSuffix(buf, []byte("\n"))
	return bytes.TrimSuffix(buf, []byte("\r")), nil
}

// frame is one event of the stream.
type frame struct {
	id, event string
	data      []byte
}

// next returns the next event frame, skipping comments (heartbeats).
func (r *sseReader) next() (frame, error) {
	var f frame
	var dataLines [][]byte
	for {
		l, err := r.line()
		if err != nil {
			return frame{}, err
		}
		if len(l) == 0 {
			if f.event != "" || len(dataLines) > 0 {
				f.data = bytes.Join(dataLines, []byte("\n"))
				return f, nil
			}
			continue
		}
		if l[0] == ':' {
			continue
		}
		name, value, _ := bytes.Cut(l, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(name) {
		case "id":
			f.id = string(value)
		case "event":
			f.event = string(value)
		case "data":
			dataLines = append(dataLines, append([]byte(nil), value...))
		}
	}
}
