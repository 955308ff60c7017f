package redispool

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"
)

// TestTxPipeline: MULTI/INCR/INCR/EXEC in one write returns EXEC's replies;
// with a WATCHed key changed by another conn, EXEC's nil is ErrTxFailed and
// the conn stays good.
func TestTxPipeline(t *testing.T) {
	p := newTestPool(t, "pool_size=2")
	ctx := context.Background()
	key := "go:tx:" + strconv.FormatInt(time.Now().UnixNano(), 10)
	cn := mustGet(t, p)
	defer func() { _ = p.Put(cn) }()
	r, err := cn.TxPipeline(ctx, [][]string{{"INCR", key}, {"INCR", key}})
	if err != nil || len(r) != 2 || r[0] != int64(1) || r[1] != int64(2) {
		t.Fatalf("TxPipeline: %#v, %v", r, err)
	}
	if _, err := cn.Do(ctx, "WATCH", key); err != nil {
		t.Fatal(err)
	}
	other := mustGet(t, p)
	if _, err := other.Do(ctx, "SET", key, "changed"); err != nil {
		t.Fatal(err)
	}
	_ = p.Put(other)
	if r, err := cn.TxPipeline(ctx, [][]string{{"INCR", key}}); !errors.Is(err, ErrTxFailed) || r != nil {
		t.Fatalf("TxPipeline after a WATCHed key changed: %#v, %v; want ErrTxFailed", r, err)
	}
	if v, err := cn.Do(ctx, "GET", key); err != nil || v != "changed" {
		t.Fatalf("GET after the aborted transaction: %v, %v", v, err)
	}
	if _, err := cn.TxPipeline(ctx, nil); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("TxPipeline of nothing: %v", err)
	}
}

func next(t *testing.T, ch <-chan *Message) *Message {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("the channel was closed")
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
	}
	return nil
}

// TestSubscribeChannel: messages through Channel, a pattern, resubscription
// after CLIENT KILL (MsgResubscribed, then the message published after it),
// and ctx cancellation closing the channel.
func TestSubscribeChannel(t *testing.T) {
	p := newTestPool(t, "pool_size=2")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := "go:pubsub:" + strconv.FormatInt(time.Now().UnixNano(), 10)
	ps, err := p.Subscribe(ctx, ch)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ps.Close() }()
	if err := ps.PSubscribe(ctx, ch+".*"); err != nil {
		t.Fatal(err)
	}
	msgs := ps.Channel(ctx)
	if m := next(t, msgs); m.Kind != MsgSubscribe || m.Channel != ch || m.Count != 1 {
		t.Fatalf("first: %+v", m)
	}
	if m := next(t, msgs); m.Kind != MsgPSubscribe {
		t.Fatalf("second: %+v", m)
	}
	cn := mustGet(t, p)
	publish := func(c, msg string) {
		t.Helper()
		if n, err := cn.Do(context.Background(), "PUBLISH", c, msg); err != nil || n != int64(1) {
			t.Fatalf("PUBLISH %s: %v, %v", c, n, err)
		}
	}
	publish(ch, "hello")
	publish(ch+".x", "pat")
	if m := next(t, msgs); m.Kind != MsgMessage || m.Channel != ch || m.Payload != "hello" {
		t.Fatalf("message: %+v", m)
	}
	if m := next(t, msgs); m.Kind != MsgPMessage || m.Pattern != ch+".*" || m.Payload != "pat" {
		t.Fatalf("pmessage: %+v", m)
	}
	if err := ps.Ping(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if n, err := cn.Do(context.Background(), "CLIENT", "KILL", "TYPE", "pubsub"); err != nil || n != int64(1) {
		t.Fatalf("CLIENT KILL: %v, %v", n, err)
	}
	if m := next(t, msgs); m.Kind != MsgResubscribed || m.Count != 1 {
		t.Fatalf("after the kill: %+v", m)
	}
	for i := 0; i < 2; i++ {
		if m := next(t, msgs); m.Kind != MsgSubscribe && m.Kind != MsgPSubscribe {
			t.Fatalf("resubscribed confirmation: %+v", m)
		}
	}
	publish(ch, "again")
	if m := next(t, msgs); m.Kind != MsgMessage || m.Payload != "again" {
		t.Fatalf("after the resubscription: %+v", m)
	}
	if ps.Resubscribes() != 1 {
		t.Fatalf("Resubscribes: %d", ps.Resubscribes())
	}
	_ = p.Put(cn)
	cancel()
	select {
	case _, ok := <-msgs:
		for ok {
			_, ok = <-msgs
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the channel was not closed after ctx was canceled")
	}
	if err := ps.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.ReceiveTimeout(context.Background(), 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("ReceiveTimeout after Close: %v", err)
	}
}

// TestSubscribeReceiveTimeout: nothing within the timeout is (nil, nil);
// a closed pool is ErrClosed.
func TestSubscribeReceiveTimeout(t *testing.T) {
	p := newTestPool(t, "pool_size=1")
	ctx := context.Background()
	ps, err := p.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ps.Close() }()
	if m, err := ps.ReceiveTimeout(ctx, 50*time.Millisecond); m != nil || err != nil {
		t.Fatalf("ReceiveTimeout with nothing: %+v, %v", m, err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.ReceiveTimeout(ctx, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("after the pool's Close: %v", err)
	}
}

// TestPubSubConcurrentUse: Subscribe from several goroutines while the
// Channel goroutine receives, then Close while it runs (go test -race checks
// the sharing); every subscribed channel's message arrives.
func TestPubSubConcurrentUse(t *testing.T) {
	p := newTestPool(t, "pool_size=2")
	ctx := context.Background()
	ps, err := p.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	msgs := ps.Channel(ctx)
	base := "go:conc:" + strconv.FormatInt(time.Now().UnixNano(), 10)
	const n = 4
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func(i int) { errs <- ps.Subscribe(ctx, base+strconv.Itoa(i)) }(i)
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		if m := next(t, msgs); m.Kind != MsgSubscribe {
			t.Fatalf("confirmation: %+v", m)
		}
	}
	cn := mustGet(t, p)
	for i := 0; i < n; i++ {
		if _, err := cn.Do(ctx, "PUBLISH", base+strconv.Itoa(i), "x"); err != nil {
			t.Fatal(err)
		}
	}
	_ = p.Put(cn)
	seen := map[string]bool{}
	for len(seen) < n {
		m := next(t, msgs)
		if m.Kind == MsgMessage {
			seen[m.Channel] = true
		}
	}
	if err := ps.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-msgs; ok {
		for range msgs {
		}
	}
}

// pauseServer has the test server hold every client's commands for ms
// milliseconds (CLIENT PAUSE ... ALL): a subscriber's PING waits for its PONG.
func pauseServer(t *testing.T, p *Pool, ms int) {
	t.Helper()
	cn := mustGet(t, p)
	defer func() { _ = p.Put(cn) }()
	if _, err := cn.Do(context.Background(), "CLIENT", "PAUSE", strconv.Itoa(ms), "ALL"); err != nil {
		t.Fatal(err)
	}
}

// 48 PubSubs pinging a paused server (each answer about 300 ms away) wait in
// the netpoller: no goroutine holds an OS thread in a cgo call meanwhile.
func TestPubSubPingWaitsInTheNetpoller(t *testing.T) {
	const n = 48
	p := newTestPool(t, "pool_size=2")
	ctx := context.Background()
	subs := make([]*PubSub, n)
	for i := range subs {
		ps, err := p.Subscribe(ctx, "go:ping:netpoller")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = ps.Close() }()
		subs[i] = ps
	}
	pauseServer(t, p, 300)
	waitsHoldNoThread(t, n, "subscriber pings", func(i int) error {
		return subs[i].Ping(ctx, 30*time.Second)
	})
	for i, ps := range subs {
		if r := ps.Resubscribes(); r != 0 {
			t.Fatalf("PubSub %d: %d resubscribes after an answered ping", i, r)
		}
	}
}

// Ping returns ctx's error when ctx ends first (its deadline, or a cancel),
// and the PubSub stays usable: the next Ping is answered, no resubscription,
// and a message still arrives.
func TestPubSubPingHonoursCtx(t *testing.T) {
	p := newTestPool(t, "pool_size=2")
	ctx := context.Background()
	ch := "go:ping:ctx:" + strconv.FormatInt(time.Now().UnixNano(), 10)
	ps, err := p.Subscribe(ctx, ch)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ps.Close() }()
	if m, err := ps.ReceiveTimeout(ctx, 10*time.Second); err != nil || m == nil || m.Kind != MsgSubscribe {
		t.Fatalf("subscribe confirmation: %+v, %v", m, err)
	}
	pauseServer(t, p, 1500)
	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancelShort()
	if err := ps.Ping(short, 30*time.Second); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ping past ctx's deadline = %v, want context.DeadlineExceeded", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	stop := time.AfterFunc(100*time.Millisecond, cancel)
	defer stop.Stop()
	if err := ps.Ping(canceled, 30*time.Second); !errors.Is(err, context.Canceled) {
		t.Fatalf("Ping with ctx canceled = %v, want context.Canceled", err)
	}
	// Waits out the pause: the given-up pings' answers are not counted.
	if err := ps.Ping(ctx, 30*time.Second); err != nil {
		t.Fatalf("Ping after the canceled ones: %v", err)
	}
	if r := ps.Resubscribes(); r != 0 {
		t.Fatalf("%d resubscribes after ctx ended a Ping", r)
	}
	cn := mustGet(t, p)
	if _, err := cn.Do(ctx, "PUBLISH", ch, "after"); err != nil {
		t.Fatal(err)
	}
	_ = p.Put(cn)
	if m, err := ps.ReceiveTimeout(ctx, 10*time.Second); err != nil || m == nil || m.Payload != "after" {
		t.Fatalf("the message after the pings: %+v, %v", m, err)
	}
}

// Ping while the Channel goroutine waits to receive (it holds the receive
// turn for good): the answer is awaited on Ping's own fd, whichever of the
// two reads it, and messages still flow.
func TestPubSubPingWhileChannelReceives(t *testing.T) {
	p := newTestPool(t, "pool_size=2")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := "go:ping:chan:" + strconv.FormatInt(time.Now().UnixNano(), 10)
	ps, err := p.Subscribe(ctx, ch)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ps.Close() }()
	msgs := ps.Channel(ctx)
	if m := next(t, msgs); m.Kind != MsgSubscribe {
		t.Fatalf("first: %+v", m)
	}
	for i := 0; i < 3; i++ {
		pauseServer(t, p, 100)
		if err := ps.Ping(ctx, 30*time.Second); err != nil {
			t.Fatalf("Ping %d with Channel receiving: %v", i, err)
		}
	}
	cn := mustGet(t, p)
	if _, err := cn.Do(ctx, "PUBLISH", ch, "after"); err != nil {
		t.Fatal(err)
	}
	_ = p.Put(cn)
	if m := next(t, msgs); m.Kind != MsgMessage || m.Payload != "after" {
		t.Fatalf("after the pings: %+v", m)
	}
	if r := ps.Resubscribes(); r != 0 {
		t.Fatalf("%d resubscribes", r)
	}
}
