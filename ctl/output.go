package ctl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// column is one column of a table view of T.
type column[T any] struct {
	header string
	value  func(T) string
}

// field is one line of the detail view of an object.
type field struct{ name, value string }

// view says how a resource looks in tables.
type view[T any] struct {
	columns []column[T]
	detail  func(T) []field
}

func newTabWriter(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

// writeTable prints items as an aligned table with a header line.
func writeTable[T any](w io.Writer, cols []column[T], items []T) error {
	tw := newTabWriter(w)
	headers := make([]string, len(cols))
	for i, col := range cols {
		headers[i] = col.header
	}
	fmt.Fprintln(tw, strings.Join(headers, "\t"))
	for _, it := range items {
		vals := make([]string, len(cols))
		for i, col := range cols {
			vals[i] = cell(col.value(it))
		}
		fmt.Fprintln(tw, strings.Join(vals, "\t"))
	}
	return tw.Flush()
}

// writeFields prints name/value pairs, aligned.
func writeFields(w io.Writer, fields []field) error {
	tw := newTabWriter(w)
	for _, f := range fields {
		fmt.Fprintf(tw, "%s:\t%s\n", f.name, cell(f.value))
	}
	return tw.Flush()
}

// cell makes a value fit one table cell: no tabs or newlines, "-" if empty.
func cell(s string) string {
	s = strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(s)
	if s == "" {
		return "-"
	}
	return s
}

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// printList prints items in the chosen format; raw, when it has one entry
// per item, holds the items as the server sent them (for JSON).
func printList[T any](c *cli, v view[T], items []T, raw []json.RawMessage) error {
	if c.output == "json" {
		if len(raw) == len(items) && raw != nil {
			return writeRawJSON(c.io.Stdout, rawArray(raw))
		}
		if items == nil {
			items = []T{}
		}
		return writeJSON(c.io.Stdout, items)
	}
	return writeTable(c.io.Stdout, v.columns, items)
}

// rawArray joins raw JSON values into one array.
func rawArray(items []json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, it := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(it)
	}
	b.WriteByte(']')
	return b.Bytes()
}

// writeRawJSON prints JSON text indented like writeJSON.
func writeRawJSON(w io.Writer, raw json.RawMessage) error {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return fmt.Errorf("server answer is not valid JSON: %w", err)
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}

// sameObject reports whether raw is a JSON object with the same "id" as
// obj (so it is obj as the server sent it, not some other answer).
func sameObject(raw json.RawMessage, obj any) bool {
	if len(raw) == 0 {
		return false
	}
	typed, err := json.Marshal(obj)
	if err != nil {
		return false
	}
	var a, b struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(raw, &a) != nil || json.Unmarshal(typed, &b) != nil {
		return false
	}
	return len(a.ID) > 0 && bytes.Equal(a.ID, b.ID)
}

// printOne prints one object in the chosen format. JSON is the server's
// own answer when the last call returned this very object.
func printOne[T any](c *cli, v view[T], obj T) error {
	if c.output == "json" {
		if sameObject(c.lastRaw, obj) {
			return writeRawJSON(c.io.Stdout, c.lastRaw)
		}
		return writeJSON(c.io.Stdout, obj)
	}
	if v.detail != nil {
		return writeFields(c.io.Stdout, v.detail(obj))
	}
	return writeTable(c.io.Stdout, v.columns, []T{obj})
}

// printAnswer prints, as JSON, the answer of the last API call: the server's
// own text when there is one, else the decoded value v.
func printAnswer(c *cli, v any) error {
	if len(bytes.TrimSpace(c.lastRaw)) > 0 {
		return writeRawJSON(c.io.Stdout, c.lastRaw)
	}
	return writeJSON(c.io.Stdout, v)
}

// printDone tells a person that an action without an object succeeded; in
// JSON mode it prints {"ok":true,...} so scripts get valid JSON too.
func printDone(c *cli, msg string, kv ...string) error {
	if c.output == "json" {
		m := map[string]any{"ok": true}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return writeJSON(c.io.Stdout, m)
	}
	_, err := fmt.Fprintln(c.io.Stdout, msg)
	return err
}

// ts renders a time for tables (UTC, minutes); zero is "-".
func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04Z")
}

// tsp renders an optional time.
func tsp(t *time.Time) string {
	if t == nil {
		return ""
	}
	return ts(*t)
}

func yesno(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func itoa(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}
