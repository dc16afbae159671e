//go:build !windows

package fileperm

// modeBitsApply is true: the permission bits are what the kernel enforces.
const modeBitsApply = true
