/*
 * control — the daemon's control socket (<data_dir>/control.sock, mode
 * 0600) and its client.  Every administrative CLI command is one request:
 * a JSON object on one line, {"cmd":"tenant.add","args":{...}}; the answer
 * is one line, {"ok":true,"result":...} or {"ok":false,"error":"..."}.
 *
 * Daemon side: control_start() listens on the loop; handlers call store/,
 * queue/ and scheduler functions.  Client side: control_request() connects,
 * sends, and returns the parsed answer.
 */
#ifndef MAILARK_CONTROL_CONTROL_H
#define MAILARK_CONTROL_CONTROL_H

struct server;
struct control;

int control_start(struct server *srv, struct control **c_r, char **err_r);
void control_free(struct control **c);

/*
 * Client: sends request_json (one JSON object) to the daemon of data_dir.
 * Returns 0 with *response_r (the response line, caller frees), or -1 with
 * *err_r ("mailark is not running (no control socket at …)").
 */
int control_request(const char *data_dir, const char *request_json, char **response_r,
    char **err_r);

#endif
