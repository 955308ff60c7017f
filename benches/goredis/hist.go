// The latency histogram of the go-redis drivers (v5/main.go, v9/main.go): the suite
// copies this file next to either driver before it builds it.
package main

import (
	"math"
	"math/bits"
)

// A log-linear histogram like the suite's: 32 buckets per power of two.
const subBits = 5
const sub = 1 << subBits

type hist struct {
	counts         [64 * sub]uint64
	n, sum, maxVal uint64
}

func bucket(v uint64) int {
	if v < sub {
		return int(v)
	}
	shift := bits.Len64(v) - 1 - subBits
	return (shift+1)*sub + int((v>>uint(shift))&(sub-1))
}

// The smallest value of bucket b.
func lower(b int) uint64 {
	if b < sub {
		return uint64(b)
	}
	shift := b/sub - 1
	return (uint64(b%sub) | sub) << uint(shift)
}

func (h *hist) record(ns uint64) {
	h.n++
	h.sum += ns
	if ns > h.maxVal {
		h.maxVal = ns
	}
	h.counts[bucket(ns)]++
}

func (h *hist) merge(o *hist) {
	h.n += o.n
	h.sum += o.sum
	if o.maxVal > h.maxVal {
		h.maxVal = o.maxVal
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
}

func (h *hist) quantile(q float64) uint64 {
	want := uint64(math.Ceil(q * float64(h.n)))
	var seen uint64
	for b, c := range h.counts {
		seen += c
		if c > 0 && seen >= want {
			return lower(b)
		}
	}
	return h.maxVal
}
