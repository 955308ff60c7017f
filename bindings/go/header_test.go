package redispool

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// headerText reads the redispool.h the package is built against: the
// repository's include/redispool.h, or the one in pkg-config's includedir.
func headerText(t *testing.T) string {
	t.Helper()
	paths := []string{filepath.Join("..", "..", "include", "redispool.h")}
	if out, err := exec.Command("pkg-config", "--variable=includedir", "redispool").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); dir != "" {
			paths = append(paths, filepath.Join(dir, "redispool.h"))
		}
	}
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			return string(b)
		}
	}
	t.Fatalf("redispool.h not found in %v", paths)
	return ""
}

// TestCodesMatchHeader checks that the codes table holds exactly the status
// codes redispool.h defines, each with a sentinel of its own code.
func TestCodesMatchHeader(t *testing.T) {
	want := map[string]Code{}
	for _, m := range regexp.MustCompile(`(?m)^#define (POOL_(?:OK|ERR_[A-Z_]+)) (-?\d+)\s*$`).
		FindAllStringSubmatch(headerText(t), -1) {
		v, err := strconv.Atoi(m[2])
		if err != nil {
			t.Fatal(err)
		}
		want[m[1]] = Code(v)
	}
	if len(want) < 14 {
		t.Fatalf("parsed only %d status codes from the header: %v", len(want), want)
	}
	got := map[string]Code{}
	for _, c := range codes {
		if _, dup := got[c.name]; dup {
			t.Errorf("%s listed twice", c.name)
		}
		got[c.name] = c.code
		switch {
		case c.code == CodeOK && c.sentinel != nil:
			t.Errorf("POOL_OK has a sentinel")
		case c.code != CodeOK && (c.sentinel == nil || c.sentinel.Code != c.code):
			t.Errorf("%s: no sentinel of its own code", c.name)
		}
	}
	for name, v := range want {
		if g, ok := got[name]; !ok {
			t.Errorf("the header's %s = %d is missing from the Go codes table", name, v)
		} else if g != v {
			t.Errorf("%s: Go has %d, the header %d", name, g, v)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("the Go codes table has %s, which the header does not define", name)
		}
	}
}

// snakeCase turns a Go field name into the C one: "InUseConns" -> "in_use_conns".
func snakeCase(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// TestStatsMatchHeader checks that Stats has one field for each field of the
// header's struct pool_stats (but struct_size), so a new counter in the C
// library shows up here as a failing test until the binding carries it.
func TestStatsMatchHeader(t *testing.T) {
	body := regexp.MustCompile(`(?s)struct pool_stats \{(.*?)\n\};`).FindStringSubmatch(headerText(t))
	if body == nil {
		t.Fatal("struct pool_stats not found in the header")
	}
	want := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s*\w+ (\w+);`).FindAllStringSubmatch(body[1], -1) {
		if m[1] != "struct_size" {
			want[m[1]] = true
		}
	}
	got := map[string]bool{}
	st := reflect.TypeOf(Stats{})
	for i := 0; i < st.NumField(); i++ {
		name := snakeCase(st.Field(i).Name)
		if name == "wait_duration" { // a time.Duration for wait_duration_ns
			name = "wait_duration_ns"
		}
		got[name] = true
	}
	for name := range want {
		if !got[name] {
			t.Errorf("pool_stats_t.%s has no field in Stats", name)
		}
	}
	for name := range got {
		if !want[name] {
			t.Errorf("Stats has %s, which pool_stats_t lacks", name)
		}
	}
}
