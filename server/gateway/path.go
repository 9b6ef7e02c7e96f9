package gateway

import (
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/intentpdp/intentpdp/server/engine"
)

// canonicalPath checks the escaped request path (without its query) that a
// gateway reports and returns its unescaped segments and its canonical
// escaped form. intentpdp decides on the path the upstream will serve, so
// it accepts only paths that every proxy and backend reads the same way:
// each segment is unescaped exactly once, and a path is refused with
// engine.ErrNonCanonicalPath when, after that, any segment
//
//   - is ".", ".." or empty (a "//", a trailing "/"; the root "/" itself is
//     fine), which path cleaning would fold into another path;
//   - contains "/" (an encoded slash, split by some proxies and not by
//     others), "\" (a separator to some backends), "%" (double encoding,
//     which a second decoder would turn into another path), ";" (path
//     parameters, dropped by some servers), "#" or "?";
//   - is not valid UTF-8 (overlong encodings of "." and "/" included) or
//     holds a control character (NUL included).
//
// It also refuses a path that does not start with "/" (an absolute-form
// request target) or that does not unescape. Refusing is deliberate:
// normalising would decide on a path some backend may not serve.
//
// The canonical form escapes, segment by segment, every byte outside RFC
// 3986's pchar set, with upper-case hex, and nothing else; it is a fixed
// point: canonicalPath of a canonical path returns it unchanged.
func canonicalPath(escaped string) (segments []string, canonical string, err error) {
	if escaped == "/" {
		return []string{""}, "/", nil
	}
	rest, ok := strings.CutPrefix(escaped, "/")
	if !ok {
		return nil, "", fmt.Errorf("%w: %q does not start with /", engine.ErrNonCanonicalPath, escaped)
	}
	raw := strings.Split(rest, "/")
	segments = make([]string, len(raw))
	var b strings.Builder
	b.Grow(len(escaped))
	for i, r := range raw {
		seg, err := url.PathUnescape(r)
		if err != nil {
			return nil, "", fmt.Errorf("%w: %q: bad escape in segment %q", engine.ErrNonCanonicalPath, escaped, r)
		}
		if why := badSegment(seg); why != "" {
			return nil, "", fmt.Errorf("%w: %q: segment %q %s", engine.ErrNonCanonicalPath, escaped, r, why)
		}
		segments[i] = seg
		b.WriteByte('/')
		escapeSegment(&b, seg)
	}
	return segments, b.String(), nil
}

// badSegment says what is wrong with an unescaped segment, or "".
func badSegment(seg string) string {
	switch seg {
	case "":
		return "is empty"
	case ".", "..":
		return "is a dot segment"
	}
	if i := strings.IndexAny(seg, `/\%;#?`); i >= 0 {
		return fmt.Sprintf("holds %q after unescaping", seg[i])
	}
	if !utf8.ValidString(seg) {
		return "is not valid UTF-8"
	}
	for _, c := range seg {
		if unicode.IsControl(c) {
			return "holds a control character"
		}
	}
	return ""
}

// escapeSegment writes seg escaped: pchar bytes (unreserved, sub-delims,
// ":" and "@") as they are, every other byte as %XX.
func escapeSegment(b *strings.Builder, seg string) {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if isPchar(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
}

func isPchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~!$&'()*+,;=:@", c) >= 0
}
