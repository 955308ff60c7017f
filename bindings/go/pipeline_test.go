package redispool

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDoTimeoutBlocking: BLPOP 2 with DoTimeout 3s on a pool whose read
// timeout is 1s waits the 2s for its nil reply and the conn stays good; the
// same command with Do fails after the pool's 1s and the conn is bad.
func TestDoTimeoutBlocking(t *testing.T) {
	p := newTestPool(t, "pool_size=2&read_timeout=1s")
	ctx := context.Background()
	key := "go:dotimeout:" + strconv.FormatInt(time.Now().UnixNano(), 10)

	cn, err := p.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	v, err := cn.DoTimeout(ctx, 3*time.Second, "BLPOP", key, "2")
	elapsed := time.Since(start)
	if !errors.Is(err, Nil) || v != nil {
		t.Fatalf("BLPOP 2 with DoTimeout 3s: %v, %v; want nil, Nil", v, err)
	}
	if elapsed < 1500*time.Millisecond {
		t.Fatalf("BLPOP 2 returned after %v", elapsed)
	}
	if v, err := cn.Do(ctx, "PING"); err != nil || v != "PONG" {
		t.Fatalf("PING after BLPOP: %v, %v", v, err)
	}
	// Timeout 0 is none: an element pushed meanwhile is the reply.
	if _, err := cn.Do(ctx, "RPUSH", key, "x"); err != nil {
		t.Fatal(err)
	}
	if v, err := cn.DoTimeout(ctx, 0, "BLPOP", key, "1"); err != nil || len(v.([]interface{})) != 2 {
		t.Fatalf("BLPOP with an element: %v, %v", v, err)
	}
	if err := p.Put(cn); err != nil {
		t.Fatal(err)
	}

	// Do keeps the pool's read timeout: BLPOP 2 is an I/O timeout.
	cn, err = p.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cn.Do(ctx, "BLPOP", key, "2"); !errors.Is(err, ErrIO) {
		t.Fatalf("BLPOP 2 with Do on a 1s read timeout: %v, want ErrIO", err)
	}
	if _, err := cn.Do(ctx, "PING"); !errors.Is(err, ErrBadConn) {
		t.Fatalf("PING after a timed out read: %v, want ErrBadConn", err)
	}
	_ = p.Put(cn)
}

// TestPipeline: 100 SETs, a WRONGTYPE, then 100 GETs in one pipeline, each
// reply in its place.
func TestPipeline(t *testing.T) {
	p := newTestPool(t, "pool_size=1")
	ctx := context.Background()
	pre := "go:pipe:" + strconv.FormatInt(time.Now().UnixNano(), 10) + ":"
	cn, err := p.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Put(cn)

	var cmds [][]string
	for i := 0; i < 100; i++ {
		cmds = append(cmds, []string{"SET", pre + strconv.Itoa(i), "v" + strconv.Itoa(i)})
	}
	cmds = append(cmds, []string{"LPUSH", pre + "0", "x"})
	for i := 0; i < 100; i++ {
		cmds = append(cmds, []string{"GET", pre + strconv.Itoa(i)})
	}
	cmds = append(cmds, []string{"GET", pre + "missing"})
	replies, err := cn.Pipeline(ctx, cmds)
	if err != nil {
		t.Fatal(err)
	}
	if len(replies) != len(cmds) {
		t.Fatalf("%d replies for %d commands", len(replies), len(cmds))
	}
	for i := 0; i < 100; i++ {
		if replies[i] != "OK" {
			t.Fatalf("SET %d: %#v", i, replies[i])
		}
		if want := "v" + strconv.Itoa(i); replies[101+i] != want {
			t.Fatalf("GET %d: %#v, want %q", i, replies[101+i], want)
		}
	}
	if e, ok := replies[100].(RedisError); !ok || !strings.HasPrefix(string(e), "WRONGTYPE") {
		t.Fatalf("LPUSH on a string: %#v, want a WRONGTYPE RedisError", replies[100])
	}
	if replies[201] != nil {
		t.Fatalf("GET of a missing key: %#v, want nil", replies[201])
	}
	if v, err := cn.Do(ctx, "PING"); err != nil || v != "PONG" {
		t.Fatalf("PING after the pipeline: %v, %v", v, err)
	}
	if _, err := cn.Pipeline(ctx, nil); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("empty pipeline: %v, want ErrInvalidArg", err)
	}
	if _, err := cn.Pipeline(ctx, [][]string{{"PING"}, {}}); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("empty command: %v, want ErrInvalidArg", err)
	}
}

// TestPipelineTransaction: MULTI, INCR, INCR, EXEC pipelined.
func TestPipelineTransaction(t *testing.T) {
	p := newTestPool(t, "pool_size=1")
	ctx := context.Background()
	key := "go:multi:" + strconv.FormatInt(time.Now().UnixNano(), 10)
	cn, err := p.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Put(cn)
	replies, err := cn.Pipeline(ctx, [][]string{{"MULTI"}, {"INCR", key}, {"INCR", key}, {"EXEC"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(replies) != 4 || replies[0] != "OK" || replies[1] != "QUEUED" || replies[2] != "QUEUED" {
		t.Fatalf("replies: %#v", replies)
	}
	exec, ok := replies[3].([]interface{})
	if !ok || len(exec) != 2 || exec[0] != int64(1) || exec[1] != int64(2) {
		t.Fatalf("EXEC: %#v, want [1 2]", replies[3])
	}
}

// TestPipelineIOFailure: a fake server answers two SETs, then closes the
// connection at the GET: Pipeline returns the two replies and ErrIO, and the
// conn is bad.
func TestPipelineIOFailure(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil || !strings.HasPrefix(line, "*") {
				return
			}
			n, _ := strconv.Atoi(strings.TrimSpace(line[1:]))
			var args []string
			for i := 0; i < n; i++ {
				hdr, err := r.ReadString('\n')
				if err != nil {
					return
				}
				size, _ := strconv.Atoi(strings.TrimSpace(hdr[1:]))
				buf := make([]byte, size+2)
				if _, err := io.ReadFull(r, buf); err != nil {
					return
				}
				args = append(args, string(buf[:size]))
			}
			switch strings.ToUpper(args[0]) {
			case "GET":
				return // close without answering
			case "PING":
				_, err = c.Write([]byte("+PONG\r\n"))
			default:
				_, err = c.Write([]byte("+OK\r\n"))
			}
			if err != nil {
				return
			}
		}
	}()

	p, err := NewWithOptions(Options{Addr: l.Addr().String(), PoolSize: 1, ReadTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	cn, err := p.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	replies, err := cn.Pipeline(ctx, [][]string{{"SET", "a", "1"}, {"SET", "b", "2"}, {"GET", "a"}, {"SET", "c", "3"}})
	if !errors.Is(err, ErrIO) {
		t.Fatalf("Pipeline through a closed conn: %v, want ErrIO", err)
	}
	if len(replies) != 2 || replies[0] != "OK" || replies[1] != "OK" {
		t.Fatalf("replies before the failure: %#v, want [OK OK]", replies)
	}
	if _, err := cn.Do(ctx, "PING"); !errors.Is(err, ErrBadConn) {
		t.Fatalf("PING after a failed pipeline: %v, want ErrBadConn", err)
	}
	_ = p.Put(cn)
}
