/*
 * attach — the attachment policy content stage: walks every MIME part of
 * m->mime that is an attachment (or any non-text leaf), finds its true type
 * with libmagic and its extension, looks inside archives with libarchive
 * (zip, 7z, rar, tar, gz …, nested up to a depth limit, bounded in entries
 * and bytes), and flags encrypted archives and macro-enabled Office files
 * (OLE with a VBA storage, OOXML with vbaProject.bin, .docm/.xlsm…).
 *
 *   rc = attach_stage(m, r, &err);   // hygiene.c stage table
 *
 * Findings raise the tenant's attach.action / attach.encrypted /
 * attach.macros with reasons like "attach:blocked extension .exe in
 * invoice.zip/setup.exe"; reject replies "550 5.7.1 Message rejected:
 * attachment policy (...)".
 */
#ifndef MAILARK_HYGIENE_ATTACH_H
#define MAILARK_HYGIENE_ATTACH_H

struct hygiene_msg;
struct hygiene_result;

int attach_stage(const struct hygiene_msg *m, struct hygiene_result *r, char **err_r);

#endif
