package redispool

// This file holds only the Go function the library calls back (a file with
// //export may have no C definitions in its preamble).

// #include <stdint.h>
import "C"

// rpConnStateFree is the free_fn of a conn's userdata (nonblocking.go): the
// library calls it once, when it closes the conn, on a thread that called
// into it (a goroutine's, in pool_put, pool_remove or pool_free).
//
//export rpConnStateFree
func rpConnStateFree(ud C.uintptr_t) {
	if cs := stateOf(uintptr(ud)); cs != nil {
		cs.free()
	}
}
