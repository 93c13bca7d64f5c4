// Command hello prints a greeting; goimage's tests build it.
package main

import "fmt"

func main() { fmt.Println("hello") }
