// Unbounded recursion: the goroutine's stack reaches its limit (1 MiB here, set with
// debug.SetMaxStack so that the guest's memory suffices) and the runtime prints
// "runtime: goroutine stack exceeds 1048576-byte limit" and "fatal error: stack
// overflow" with the trace, then exits with status 2.
//
// Triage must conclude: app-abort, kind go-fatal-stack-overflow, title "go-fatal: stack
// overflow in main.walk", guilty frames main.walk | main.walk | main.walk.
package main

import (
	"fmt"
	"runtime/debug"
)

type tree struct {
	left, right *tree
}

//go:noinline
func walk(t *tree, depth int) int {
	if t == nil {
		return depth
	}
	return walk(t.left, depth+1) + walk(t.right, depth+1)
}

func main() {
	debug.SetMaxStack(1 << 20)
	fmt.Println("overflow: walking a cyclic tree")
	t := &tree{}
	t.left = t // a cycle: the bug
	fmt.Println("overflow FAILED: depth", walk(t, 0))
}
