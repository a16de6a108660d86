/*
 * archive_html — reduces HTML to plain text for the search index.
 *
 *   char *text = archive_html_to_text(html, len);
 *   index(text);
 *   free(text);
 *
 * A small, forgiving reducer, not a browser: the content of <script>,
 * <style>, <head> (and <title>, <template>) and of comments is dropped, every
 * other tag becomes a space, block-level tags (p, div, br, li, tr, h1-h6, ...)
 * become line breaks, character references (&amp; &#NN; &#xHH; &nbsp; and
 * the common named ones) are decoded, and runs of white space are collapsed
 * (at most one blank between words, at most one line break in a row).
 * Unknown entities are kept as written.  The input should already be UTF-8;
 * invalid bytes are passed through here and cleaned by the caller.
 * The result is malloc'd (the caller frees) and never NULL, never has a NUL.
 */
#ifndef MAILARK_ARCHIVE_HTML_H
#define MAILARK_ARCHIVE_HTML_H

#include <stddef.h>

char *archive_html_to_text(const char *html, size_t len);

#endif
