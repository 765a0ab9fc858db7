package runtime

import (
	"bufio"
	"io"
	"sync"
)

// lineWriter serializes whole lines from several children onto shared writers, so lines of
// different children never interleave mid-line.
type lineWriter struct {
	mu sync.Mutex
}

// copyPrefixed copies r to w line by line, each line preceded by prefix. A last line
// without newline gets one.
func (lw *lineWriter) copyPrefixed(w io.Writer, r io.Reader, prefix string) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			buf := make([]byte, 0, len(prefix)+len(line)+1)
			buf = append(append(buf, prefix...), line...)
			if buf[len(buf)-1] != '\n' && err != bufio.ErrBufferFull {
				buf = append(buf, '\n')
			}
			lw.mu.Lock()
			w.Write(buf)
			lw.mu.Unlock()
			if err == bufio.ErrBufferFull {
				// An overlong line continues as a line of its own.
				lw.mu.Lock()
				w.Write([]byte{'\n'})
				lw.mu.Unlock()
				continue
			}
		}
		if err != nil {
			if err == bufio.ErrBufferFull {
				continue
			}
			return
		}
	}
}

// prefixes returns each name padded to the longest, followed by " | ".
func prefixes(names []string) map[string]string {
	width := 0
	for _, n := range names {
		width = max(width, len(n))
	}
	out := make(map[string]string, len(names))
	for _, n := range names {
		p := n
		for len(p) < width {
			p += " "
		}
		out[n] = p + " | "
	}
	return out
}
