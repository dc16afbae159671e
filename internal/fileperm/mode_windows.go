package fileperm

// modeBitsApply is false: see OwnerOnly.
const modeBitsApply = false
