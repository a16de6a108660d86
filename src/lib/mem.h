/*
 * mem — allocation wrappers that never return NULL.
 *
 * Out of memory is the one failure mailark does not try to survive: every
 * x*() function aborts the process with a log line instead of returning NULL.
 * Memory from these functions is released with free(); the caller that
 * receives a pointer owns it unless the function's comment says otherwise.
 */
#ifndef MAILARK_LIB_MEM_H
#define MAILARK_LIB_MEM_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
void *xmemdup(const void *p, size_t n);
/* Frees *ptr and sets it to NULL. */
void xfree(void *ptr_to_ptr);

#endif
