package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
)

// MaxBodyBytes bounds request bodies; larger ones get 413.
const MaxBodyBytes = 1 << 20

// readBody reads the (size-limited) body and checks its content type. An
// empty body is returned as nil.
func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errorf(http.StatusRequestEntityTooLarge, CodeTooLarge, "request body is larger than %d bytes", MaxBodyBytes)
		}
		return nil, badRequest("reading request body: %v", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, errorf(http.StatusUnsupportedMediaType, CodeUnsupportedMedia, "content type %q is not supported: send application/json", ct)
		}
	} else {
		return nil, errorf(http.StatusUnsupportedMediaType, CodeUnsupportedMedia, "missing Content-Type: send application/json")
	}
	return b, nil
}

// decodeJSON strictly decodes one JSON object into dst: unknown fields,
// wrong types, trailing data and non-objects are 400 errors that say what
// was wrong.
func decodeJSON(body []byte, dst any) error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return badRequest("request body is empty: send a JSON object")
	}
	if trimmed[0] != '{' {
		return badRequest("request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("request body must contain a single JSON object")
	}
	return checkNUL(reflect.ValueOf(dst), "")
}

// checkNUL refuses strings with NUL characters anywhere in a decoded body:
// no field may hold one, and databases refuse them.
func checkNUL(v reflect.Value, field string) error {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return checkNUL(v.Elem(), field)
		}
	case reflect.String:
		if strings.ContainsRune(v.String(), 0) {
			e := badRequest("field %q must not contain NUL characters", field)
			e.Field = field
			return e
		}
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" {
				name = f.Name
			}
			if err := checkNUL(v.Field(i), name); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			if err := checkNUL(v.Index(i), field); err != nil {
				return err
			}
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			if err := checkNUL(it.Key(), field); err != nil {
				return err
			}
			if err := checkNUL(it.Value(), field); err != nil {
				return err
			}
		}
	}
	return nil
}

func decodeError(err error) *Error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return badRequest("malformed JSON at byte %d: %v", se.Offset, se)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return badRequest("malformed JSON: body ends early")
	case errors.As(err, &te):
		field := te.Field
		e := badRequest("field %q must be %s, not %s", field, jsonKind(te.Type.Kind().String()), te.Value)
		e.Field = field
		return e
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		e := badRequest("unknown field %q", name)
		e.Field = name
		return e
	}
	// Other decoder errors (e.g. invalid time text from a field's
	// UnmarshalJSON) are still the client's fault.
	return badRequest("invalid JSON: %v", strings.TrimPrefix(err.Error(), "json: "))
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	}
	return fmt.Sprintf("of type %s", goKind)
}
