// Package readonly gives tests a view of a directory that the test process
// really cannot write (Linux only; elsewhere the package is empty).
package readonly
