/* Cluster secrets: reading the key a raft.secret_file (or its previous one) holds, with the
 * checks on the file's type, owner and mode, and writing a new one (raftpg gen-secret). */
#include "raftpg/conf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#define SECRET_FILE_MAX 1024 /* 64 hex digits and some white space; anything longer is wrong */

static int hex_value(int ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    if (ch >= 'A' && ch <= 'F') {
        return ch - 'A' + 10;
    }
    return -1;
}

/* Why the secret file text cannot be a key, or NULL after writing the key. */
static const char *secret_parse(const char *text, size_t len, uint8_t key[CONF_SECRET_SIZE])
{
    size_t i = 0, n = 0;

    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')) {
        i++;
    }
    for (; i + 1 < len && n < CONF_SECRET_SIZE; i += 2, n++) {
        int hi = hex_value((unsigned char)text[i]), lo = hex_value((unsigned char)text[i + 1]);
        if (hi < 0 || lo < 0) {
            break;
        }
        key[n] = (uint8_t)(hi * 16 + lo);
    }
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')) {
        i++;
    }
    if (n != CONF_SECRET_SIZE || i != len) {
        sodium_memzero(key, CONF_SECRET_SIZE);
        return "expected exactly 64 hex digits (raftpg gen-secret FILE writes one)";
    }
    return NULL;
}

int conf_secret_read(const struct conf *c, bool previous, bool any_owner,
                     uint8_t key[CONF_SECRET_SIZE], char *errmsg)
{
    const char *path = previous ? c->raft.secret_file_previous : c->raft.secret_file;
    struct conf_pos pos = previous ? c->raft.secret_file_previous_pos : c->raft.secret_file_pos;
    const char *name = previous ? "raft.secret_file_previous" : "raft.secret_file";
    char text[SECRET_FILE_MAX];
    const char *why = NULL;
    struct stat st;
    ssize_t got;
    int rv = RPG_ECONFIG;

    if (path[0] == '\0') {
        return RPG_ENOTFOUND;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        return rpg_err(errmsg, RPG_ECONFIG, "%s:%u:%u: %s: cannot read %s: %s", c->path, pos.line,
                       pos.col, name, path, strerror(errno));
    }
    if (fstat(fd, &st) != 0) {
        rpg_err(errmsg, RPG_ECONFIG, "%s:%u:%u: %s: cannot stat %s: %s", c->path, pos.line, pos.col,
                name, path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rpg_err(errmsg, RPG_ECONFIG, "%s:%u:%u: %s: %s is not a regular file", c->path, pos.line,
                pos.col, name, path);
        goto out;
    }
    if (!any_owner && st.st_uid != geteuid()) {
        rpg_err(errmsg, RPG_ECONFIG,
                "%s:%u:%u: %s: %s must be owned by the agent's user (owner uid=%u, agent uid=%u)",
                c->path, pos.line, pos.col, name, path, (unsigned)st.st_uid, (unsigned)geteuid());
        goto out;
    }
    if ((st.st_mode & 077) != 0) {
        rpg_err(errmsg, RPG_ECONFIG,
                "%s:%u:%u: %s: %s is accessible to its group or to others (mode %04o); "
                "chmod 600 it",
                c->path, pos.line, pos.col, name, path, (unsigned)(st.st_mode & 07777));
        goto out;
    }
    got = read(fd, text, sizeof text);
    if (got < 0) {
        rpg_err(errmsg, RPG_ECONFIG, "%s:%u:%u: %s: cannot read %s: %s", c->path, pos.line, pos.col,
                name, path, strerror(errno));
        goto out;
    }
    why = (size_t)got == sizeof text ? "expected exactly 64 hex digits, the file is too long"
                                     : secret_parse(text, (size_t)got, key);
    if (why != NULL) {
        rpg_err(errmsg, RPG_ECONFIG, "%s:%u:%u: %s: %s: %s", c->path, pos.line, pos.col, name, path,
                why);
        goto out;
    }
    rv = 0;
out:
    sodium_memzero(text, sizeof text);
    close(fd);
    return rv;
}

int conf_secret_generate(const char *path, char *errmsg)
{
    uint8_t key[CONF_SECRET_SIZE];
    char hex[2 * CONF_SECRET_SIZE + 2];
    int rv = 0;

    if (sodium_init() < 0) {
        return rpg_err(errmsg, RPG_EIO, "cannot initialise libsodium");
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        return rpg_err(errmsg, errno == EEXIST ? RPG_EEXIST : RPG_EIO, "create %s: %s%s", path,
                       strerror(errno), errno == EEXIST ? " (refusing to overwrite a secret)" : "");
    }
    randombytes_buf(key, sizeof key);
    sodium_bin2hex(hex, sizeof hex, key, sizeof key);
    size_t n = strlen(hex);
    hex[n++] = '\n';
    /* The umask may have narrowed the mode further, never widened it; fchmod makes it exact. */
    if (fchmod(fd, 0600) != 0 || write(fd, hex, n) != (ssize_t)n || fsync(fd) != 0) {
        rv = rpg_err(errmsg, RPG_EIO, "write %s: %s", path, strerror(errno));
        unlink(path);
    }
    close(fd);
    sodium_memzero(key, sizeof key);
    sodium_memzero(hex, sizeof hex);
    return rv;
}
