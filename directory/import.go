package directory

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ImportOptions tune Directory.ImportNational.
type ImportOptions struct {
	// Size is the file's size in bytes (0 if unknown): the progress line
	// estimates the time left from it.
	Size int64
	// Progress, when set, gets a progress line every ProgressEvery
	// (default a second): lines read, lines per second, time left.
	Progress      io.Writer
	ProgressEvery time.Duration
	// At is the time of the import (first/last seen, closed at); zero
	// means now.
	At time.Time
}

// MalformedLine is a line the import skipped, and why.
type MalformedLine struct {
	Line   int // 1 is the header
	Reason string
}

// ImportSummary is what `carepost dir import` prints.
type ImportSummary struct {
	Format NationalFormat
	NationalCounts
	Lines       int // data lines read (without the header)
	Latin1Lines int // lines that were not UTF-8, read as Latin-1
	Malformed   int
	// FirstMalformed are the first MaxMalformedListed malformed lines.
	FirstMalformed []MalformedLine
	Duration       time.Duration
}

// MaxMalformedListed bounds ImportSummary.FirstMalformed.
const MaxMalformedListed = 20

// maxLineBytes: a longer line is malformed (skipped), not a reason to
// hold it all in memory.
const maxLineBytes = 1 << 20

// importBatch is how many records go to the store at a time.
const importBatch = 1000

// ImportNational reads an extraction file of format from r, streaming
// (memory does not grow with the file), and applies it to the national
// directory in one transaction (NationalStore.ImportNational): the
// records absent from the file are closed, never deleted. A malformed
// line is counted, listed (line number and reason) and skipped; a header
// that is not the format's, a read error or ctx's end abort the import
// and leave the directory as it was.
func (d *Directory) ImportNational(ctx context.Context, format NationalFormat, r io.Reader, opts ImportOptions) (ImportSummary, error) {
	start := time.Now()
	at := opts.At
	if at.IsZero() {
		at = start
	}
	sum := ImportSummary{Format: format}
	lr := &lineReader{r: bufio.NewReaderSize(r, 1<<20)}
	header, _, err := lr.next()
	if err == io.EOF && header == nil {
		return sum, errors.New("the file is empty: an extraction starts with its header line")
	}
	if err != nil && err != io.EOF {
		return sum, fmt.Errorf("reading the header line: %w", err)
	}
	text, _ := decodeLine(header)
	p, err := newLineParser(format, text)
	if err != nil {
		return sum, err
	}
	stopProgress := func() {}
	if opts.Progress != nil {
		var once sync.Once
		stop := startProgress(opts.Progress, opts.ProgressEvery, opts.Size, &lr.lines, &lr.bytes)
		stopProgress = func() {
			once.Do(func() {
				stop()
				fmt.Fprintln(opts.Progress, "file read; applying the changes to the directory…")
			})
		}
		defer stopProgress()
	}
	malformed := func(line int, reason string) {
		sum.Malformed++
		if len(sum.FirstMalformed) < MaxMalformedListed {
			sum.FirstMalformed = append(sum.FirstMalformed, MalformedLine{Line: line, Reason: reason})
		}
	}
	var pending *NationalPerson // the professional of the last lines (several places)
	eof := false
	next := func() (NationalBatch, error) {
		var b NationalBatch
		for !eof && len(b.People)+len(b.Mailboxes) < importBatch {
			if err := ctx.Err(); err != nil {
				return b, err
			}
			raw, tooLong, err := lr.next()
			if err == io.EOF {
				eof = true
				if raw == nil {
					break
				}
			} else if err != nil {
				return b, fmt.Errorf("reading line %d: %w", lr.lines.Load()+1, err)
			}
			n := int(lr.lines.Load())
			if len(strings.TrimSpace(string(raw))) == 0 && !tooLong {
				continue // blank lines (the last newline) are nothing
			}
			sum.Lines++
			if tooLong {
				malformed(n, fmt.Sprintf("the line is longer than %d bytes", maxLineBytes))
				continue
			}
			line, latin1 := decodeLine(raw)
			if latin1 {
				sum.Latin1Lines++
			}
			switch format {
			case FormatMSSante:
				m, err := p.parseMailbox(line)
				if err != nil {
					malformed(n, err.Error())
					continue
				}
				b.Mailboxes = append(b.Mailboxes, m)
			default:
				np, err := p.parsePerson(line)
				if err != nil {
					malformed(n, err.Error())
					continue
				}
				if pending != nil && pending.NationalID == np.NationalID {
					pending.Places = append(pending.Places, np.Places...)
					continue
				}
				if pending != nil {
					b.People = append(b.People, *pending)
				}
				pending = &np
			}
		}
		if eof {
			stopProgress()
		}
		if eof && pending != nil {
			b.People = append(b.People, *pending)
			pending = nil
		}
		if eof && len(b.People)+len(b.Mailboxes) == 0 {
			return b, io.EOF
		}
		return b, nil
	}
	counts, err := d.store.ImportNational(ctx, format, at, next)
	if err != nil {
		return sum, err
	}
	sum.NationalCounts = counts
	sum.Duration = time.Since(start)
	return sum, nil
}

// lineReader reads lines of any length, counting lines and bytes for the
// progress line; a line over maxLineBytes is returned cut, tooLong set.
type lineReader struct {
	r     *bufio.Reader
	buf   []byte
	lines atomic.Int64
	bytes atomic.Int64
}

func (l *lineReader) next() (line []byte, tooLong bool, err error) {
	l.buf = l.buf[:0]
	for {
		frag, err := l.r.ReadSlice('\n')
		l.bytes.Add(int64(len(frag)))
		if len(l.buf)+len(frag) <= maxLineBytes {
			l.buf = append(l.buf, frag...)
		} else {
			tooLong = true
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && len(l.buf) == 0 && !tooLong {
			return nil, false, io.EOF
		}
		l.lines.Add(1)
		return l.buf, tooLong, err
	}
}

// startProgress prints "lines, lines/s, time left" every period on w, on
// one line rewritten with \r; stop prints the last one and a newline.
func startProgress(w io.Writer, period time.Duration, size int64, lines, bytes *atomic.Int64) (stop func()) {
	if period <= 0 {
		period = time.Second
	}
	start := time.Now()
	print := func() {
		el := time.Since(start)
		n := lines.Load()
		rate := float64(n) / max(el.Seconds(), 1e-3)
		left := "?"
		if b := bytes.Load(); size > 0 && b > 0 {
			rem := time.Duration(float64(el) * float64(size-b) / float64(b))
			left = rem.Round(time.Second).String()
		}
		fmt.Fprintf(w, "\r%d lines read, %.0f lines/s, %s elapsed, about %s left   ", n, rate, el.Round(time.Second), left)
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				print()
			case <-done:
				return
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		print()
		fmt.Fprintln(w)
	}
}
