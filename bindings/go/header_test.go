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
	"time"
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

// snakeCase turns a Go field name into the C one: "InUseConns" ->
// "in_use_conns", "PoolFIFO" -> "pool_fifo".
func snakeCase(s string) string {
	var b strings.Builder
	prevLower := false
	for _, r := range s {
		if unicode.IsUpper(r) {
			if prevLower {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
			prevLower = false
		} else {
			prevLower = true
		}
		b.WriteRune(r)
	}
	return b.String()
}

// headerFields returns the field names of the header's struct name, but
// struct_size.
func headerFields(t *testing.T, name string) map[string]bool {
	return headerFieldsMin(t, name, 5)
}

// headerFieldsMin is headerFields for a struct of at least min fields.
func headerFieldsMin(t *testing.T, name string, min int) map[string]bool {
	t.Helper()
	body := regexp.MustCompile(`(?s)\nstruct ` + name + ` \{(.*?)\n\};`).FindStringSubmatch(headerText(t))
	if body == nil {
		t.Fatalf("struct %s not found in the header", name)
	}
	fields := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s*[\w *]+?[ *](\w+)(?:\[\w+\])?;`).FindAllStringSubmatch(body[1], -1) {
		if m[1] != "struct_size" {
			fields[m[1]] = true
		}
	}
	if len(fields) < min {
		t.Fatalf("parsed only %v from struct %s", fields, name)
	}
	return fields
}

// compareFields reports the fields only one side has.
func compareFields(t *testing.T, cStruct string, want, got map[string]bool, goType string) {
	t.Helper()
	for name := range want {
		if !got[name] {
			t.Errorf("%s.%s has no field in %s", cStruct, name, goType)
		}
	}
	for name := range got {
		if !want[name] {
			t.Errorf("%s has %s, which %s lacks", goType, name, cStruct)
		}
	}
}

// TestStatsMatchHeader checks that Stats has one field for each field of the
// header's struct pool_stats (but struct_size), so a new counter in the C
// library shows up here as a failing test until the binding carries it.
func TestStatsMatchHeader(t *testing.T) {
	got := map[string]bool{}
	st := reflect.TypeOf(Stats{})
	for i := 0; i < st.NumField(); i++ {
		name := snakeCase(st.Field(i).Name)
		if name == "wait_duration" { // a time.Duration for wait_duration_ns
			name = "wait_duration_ns"
		}
		got[name] = true
	}
	compareFields(t, "pool_stats_t", headerFields(t, "pool_stats"), got, "Stats")
}

// TestOptionsMatchHeader checks that Options has one field for each option of
// the header's struct pool_options: durations without the "_ms" suffix, and
// no dialer callback (a C function pointer, which Go cannot supply).
func TestOptionsMatchHeader(t *testing.T) {
	want := headerFields(t, "pool_options")
	delete(want, "dialer")
	delete(want, "dialer_userdata")
	delete(want, "dialer_userdata_free")
	got := map[string]bool{}
	ot := reflect.TypeOf(Options{})
	for i := 0; i < ot.NumField(); i++ {
		f := ot.Field(i)
		name := snakeCase(f.Name)
		if f.Type == reflect.TypeOf(time.Duration(0)) {
			name += "_ms"
		}
		// Initialisms (TLSCAFile) name their C field in a tag.
		if tag := f.Tag.Get("c"); tag != "" {
			name = tag
		}
		got[name] = true
	}
	compareFields(t, "pool_options_t", want, got, "Options")
}

// goFields returns the snake_case names of v's fields, durations with "_ms"
// appended, and a []string field F as "f" plus "f_len".
func goFields(v interface{}, lenSuffix string) map[string]bool {
	got := map[string]bool{}
	rt := reflect.TypeOf(v)
	for i := 0; i < rt.NumField(); i++ {
		f := rt.Field(i)
		name := snakeCase(f.Name)
		switch f.Type {
		case reflect.TypeOf(time.Duration(0)):
			name += "_ms"
		case reflect.TypeOf([]string(nil)):
			got[name+lenSuffix] = true
		}
		got[name] = true
	}
	return got
}

// TestClusterOptionsMatchHeader checks ClusterOptions against the header's
// struct pool_cluster_options: Seeds for seeds and seeds_len, Node for node.
func TestClusterOptionsMatchHeader(t *testing.T) {
	compareFields(t, "pool_cluster_options_t", headerFieldsMin(t, "pool_cluster_options", 5),
		goFields(ClusterOptions{}, "_len"), "ClusterOptions")
}

// TestClusterInfoMatchHeader checks ClusterInfo against the header's struct
// pool_cluster_info (but its reserved padding), and ClusterNode against
// struct pool_cluster_node.
func TestClusterInfoMatchHeader(t *testing.T) {
	want := headerFields(t, "pool_cluster_info")
	delete(want, "reserved")
	compareFields(t, "pool_cluster_info_t", want, goFields(ClusterInfo{}, ""), "ClusterInfo")
	compareFields(t, "pool_cluster_node_t", headerFieldsMin(t, "pool_cluster_node", 3),
		goFields(ClusterNode{}, ""), "ClusterNode")
}

// TestSentinelOptionsMatchHeader checks SentinelOptions against the header's
// struct pool_sentinel_options: SentinelAddrs for sentinel_addrs and
// sentinel_addrs_len, PollInterval for poll_interval_ms.
func TestSentinelOptionsMatchHeader(t *testing.T) {
	compareFields(t, "pool_sentinel_options_t", headerFieldsMin(t, "pool_sentinel_options", 6),
		goFields(SentinelOptions{}, "_len"), "SentinelOptions")
}

// TestSentinelStatsMatchHeader checks SentinelStats against the header's
// struct pool_sentinel_stats: LongestPause for longest_pause_ms.
func TestSentinelStatsMatchHeader(t *testing.T) {
	compareFields(t, "pool_sentinel_stats_t", headerFieldsMin(t, "pool_sentinel_stats", 6),
		goFields(SentinelStats{}, ""), "SentinelStats")
}
