/* Included first by every C file, before any system header (the pattern of
 * Lua's lprefix.h): it asks the C library for the POSIX interfaces the core
 * uses, so that each file builds with the plain STYLE.md flags (-std=c99)
 * and no -D from the build system. */
#ifndef PQ_PREFIX_H
#define PQ_PREFIX_H

#if !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#endif
