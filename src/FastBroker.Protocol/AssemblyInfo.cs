using System.Runtime.CompilerServices;

// Parsers stackalloc small scratch buffers on every frame; they are always written before being read, so the
// zeroing the runtime would otherwise do is pure cost.
[module: SkipLocalsInit]
