/*
 * Sluice's media send path, loaded through Deno FFI (lib/webrtc/native/).
 *
 * Two things werift does slowly under Deno's Node compatibility layer, done here:
 *  - UDP sockets: non-blocking, bound in a port range, read through one epoll set,
 *    written with sendto(2) — in order (Deno's node:dgram reorders datagrams).
 *  - SRTP (RFC 3711 AES_CM_128_HMAC_SHA1_80, RFC 7714 AEAD_AES_128_GCM): session
 *    keys derived once, one reused OpenSSL context per direction, the RTP header
 *    written straight into the output buffer (no copies beyond one memcpy).
 *
 * The receive side (sf_sink_*) exists for the fan-out benchmark's viewers: it
 * decrypts and counts media inline while draining, so a receiver process can
 * keep up with hundreds of streams.
 *
 * Every call is synchronous except sf_wait, which Deno runs on a worker thread,
 * and the send pool (sf_pool_*): a few threads ("lanes") that each own a fixed
 * share of the viewers and send a room's video frame to their share in parallel,
 * so the copy-per-viewer work is spread over the cores. A viewer always goes
 * through the same lane, and a lane works through its frames in order, so every
 * viewer's packets leave in order. Shared state is guarded: an SRTP context is
 * used under its own mutex (its audio, retransmissions and the main thread's
 * calls meet the lane's video there), and contexts and sockets are reference
 * counted, so a viewer that leaves while a lane still sends to it is freed by
 * whoever lets go last.
 *
 * Sizes are bounded: datagrams ≤ SF_MAX_PACKET, ≤ SF_MAX_SOCKETS sockets, ≤ 8
 * SSRCs per SRTP context, ≤ SF_POOL_QUEUE frames waiting per lane.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SF_API __attribute__((visibility("default")))
#define SF_ABI_VERSION 3
#define SF_MAX_PACKET 1500
#define SF_MAX_SOCKETS 8192
#define SF_MAX_STREAMS 8
#define SF_MAX_READY 256

#define PROFILE_CM_SHA1_80 1
#define PROFILE_GCM_128 7

#pragma GCC diagnostic ignored "-Wdeprecated-declarations" /* HMAC_CTX: one reused context */

/* ---------------------------------------------------------------- SRTP ---- */

typedef struct {
  uint32_t ssrc;
  uint32_t roc;
  uint16_t highest;    /* highest sequence number seen (sender: sent) */
  int started;
  /* receive statistics (sinks) */
  uint64_t received, bytes, reordered, duplicates, auth_failures;
  uint64_t first_ext, highest_ext;
  uint64_t window; /* bit i: highest_ext - i was received */
} sf_stream;

typedef struct {
  int profile;
  uint8_t key[16];
  uint8_t salt[14];
  uint8_t auth[20];
  EVP_CIPHER_CTX *cipher;
  EVP_CIPHER_CTX *decipher; /* GCM receive side, made on first use */
  HMAC_CTX *hmac;
  sf_stream streams[SF_MAX_STREAMS];
  int nstreams;
  uint32_t rtcp_index; /* SRTCP contexts: index of the last packet protected */
  uint64_t other_drops; /* sink: streams beyond SF_MAX_STREAMS, malformed */
  pthread_mutex_t mu;   /* held around every protect of a send path */
  atomic_int refs;      /* the owner's reference + one per queued pool send */
} sf_srtp;

/* RFC 3711 §4.3.1 key derivation, key derivation rate 0: AES-CM keystream under the
 * master key with IV = (master salt XOR label << 48) * 2^16. A 12-byte GCM master
 * salt is zero-padded to 14 bytes (RFC 7714 §12, as libsrtp does). */
static int derive(const uint8_t *master_key, const uint8_t *master_salt, int salt_len,
                  uint8_t label, uint8_t *out, int out_len) {
  uint8_t iv[16] = {0};
  memcpy(iv, master_salt, salt_len);
  iv[7] ^= label;
  uint8_t zeros[32] = {0};
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  if (!c) return -1;
  int len = 0, ok = EVP_EncryptInit_ex(c, EVP_aes_128_ctr(), NULL, master_key, iv) &&
                    EVP_EncryptUpdate(c, out, &len, zeros, out_len);
  EVP_CIPHER_CTX_free(c);
  return ok && len == out_len ? 0 : -1;
}

SF_API int sf_abi_version(void) { return SF_ABI_VERSION; }

static sf_srtp *create(int profile, const uint8_t *master_key, const uint8_t *master_salt, uint8_t base) {
  if (profile != PROFILE_CM_SHA1_80 && profile != PROFILE_GCM_128) return NULL;
  sf_srtp *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->profile = profile;
  int salt_len = profile == PROFILE_GCM_128 ? 12 : 14;
  if (derive(master_key, master_salt, salt_len, base + 0, s->key, 16) ||
      derive(master_key, master_salt, salt_len, base + 2, s->salt, salt_len))
    goto fail;
  s->cipher = EVP_CIPHER_CTX_new();
  if (!s->cipher) goto fail;
  if (profile == PROFILE_CM_SHA1_80) {
    if (derive(master_key, master_salt, salt_len, base + 1, s->auth, 20)) goto fail;
    if (!EVP_EncryptInit_ex(s->cipher, EVP_aes_128_ctr(), NULL, s->key, NULL)) goto fail;
    s->hmac = HMAC_CTX_new();
    if (!s->hmac || !HMAC_Init_ex(s->hmac, s->auth, 20, EVP_sha1(), NULL)) goto fail;
  } else {
    if (!EVP_EncryptInit_ex(s->cipher, EVP_aes_128_gcm(), NULL, s->key, NULL)) goto fail;
  }
  pthread_mutex_init(&s->mu, NULL);
  atomic_init(&s->refs, 1);
  return s;
fail:
  if (s->cipher) EVP_CIPHER_CTX_free(s->cipher);
  if (s->hmac) HMAC_CTX_free(s->hmac);
  free(s);
  return NULL;
}

/* Creates an SRTP context for one direction from its DTLS-SRTP master key (16
 * bytes) and salt (14 bytes for profile 1, 12 for profile 7). NULL on error. */
SF_API sf_srtp *sf_srtp_create(int profile, const uint8_t *master_key, const uint8_t *master_salt) {
  return create(profile, master_key, master_salt, 0x00);
}

/* The SRTCP context of the same master key and salt (key derivation labels 3-5). */
SF_API sf_srtp *sf_srtcp_create(int profile, const uint8_t *master_key, const uint8_t *master_salt) {
  return create(profile, master_key, master_salt, 0x03);
}

static void srtp_unref(sf_srtp *s) {
  if (atomic_fetch_sub(&s->refs, 1) != 1) return;
  EVP_CIPHER_CTX_free(s->cipher);
  if (s->decipher) EVP_CIPHER_CTX_free(s->decipher);
  if (s->hmac) HMAC_CTX_free(s->hmac);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

/* Lets go of the owner's reference: freed now, or by the last lane still sending with it. */
SF_API void sf_srtp_destroy(sf_srtp *s) {
  if (s) srtp_unref(s);
}

static sf_stream *stream_of(sf_srtp *s, uint32_t ssrc) {
  for (int i = 0; i < s->nstreams; i++)
    if (s->streams[i].ssrc == ssrc) return &s->streams[i];
  if (s->nstreams == SF_MAX_STREAMS) return NULL;
  sf_stream *st = &s->streams[s->nstreams++];
  memset(st, 0, sizeof *st);
  st->ssrc = ssrc;
  return st;
}

/* ROC of a packet a sender is about to send (a retransmission may be older). */
static uint32_t sender_roc(sf_stream *st, uint16_t seq) {
  if (!st->started) {
    st->started = 1;
    st->highest = seq;
    return st->roc;
  }
  int32_t delta = (int32_t)seq - (int32_t)st->highest;
  if (delta > 0 && delta < 32768) { st->highest = seq; return st->roc; }
  if (delta < -32768) { st->roc++; st->highest = seq; return st->roc; } /* wrapped forward */
  if (delta > 32768) return st->roc - 1;                                  /* old, before a wrap */
  return st->roc;                                                         /* older, same ROC */
}

/* RFC 3711 Appendix A: the receiver's guess of a packet's ROC. */
static uint32_t receiver_roc(const sf_stream *st, uint16_t seq) {
  if (!st->started) return 0;
  uint16_t s_l = st->highest;
  if (s_l < 32768) return (seq - s_l > 32768) ? st->roc - 1 : st->roc;
  return (s_l - 32768 > seq) ? st->roc + 1 : st->roc;
}

/* AES-CM IV (RFC 3711 §4.1.1): (salt * 2^16) XOR (SSRC * 2^64) XOR (index * 2^16);
 * for SRTCP the index is the 31-bit SRTCP index. */
static void cm_iv(const sf_srtp *s, uint32_t ssrc, uint64_t index, uint8_t iv[16]) {
  memset(iv, 0, 16);
  memcpy(iv, s->salt, 14);
  iv[4] ^= ssrc >> 24; iv[5] ^= ssrc >> 16; iv[6] ^= ssrc >> 8; iv[7] ^= ssrc;
  for (int i = 0; i < 6; i++) iv[13 - i] ^= (uint8_t)(index >> (8 * i));
}

/* AEAD IV of an RTP packet (RFC 7714 §8.1): 00 00 || SSRC || ROC || SEQ, XOR the salt. */
static void gcm_iv(const sf_srtp *s, uint32_t ssrc, uint32_t roc, uint16_t seq, uint8_t iv[12]) {
  const uint8_t raw[12] = {0, 0, ssrc >> 24, ssrc >> 16, ssrc >> 8, ssrc,
                           roc >> 24, roc >> 16, roc >> 8, roc, seq >> 8, seq};
  for (int i = 0; i < 12; i++) iv[i] = raw[i] ^ s->salt[i];
}

static int rtp_header_len(const uint8_t *p, int len) {
  if (len < 12 || (p[0] >> 6) != 2) return -1;
  int n = 12 + 4 * (p[0] & 0x0f);
  if (p[0] & 0x10) {
    if (len < n + 4) return -1;
    n += 4 + 4 * ((p[n + 2] << 8) | p[n + 3]);
  }
  return n <= len ? n : -1;
}

static int hmac_tag(sf_srtp *s, const uint8_t *data, int len, uint32_t roc, uint8_t *tag20) {
  uint8_t r[4] = {roc >> 24, roc >> 16, roc >> 8, roc};
  unsigned int out = 0;
  return HMAC_Init_ex(s->hmac, NULL, 0, NULL, NULL) && HMAC_Update(s->hmac, data, len) &&
                 HMAC_Update(s->hmac, r, 4) && HMAC_Final(s->hmac, tag20, &out)
             ? 0
             : -1;
}

/* Encrypts packet[0..len) (an RTP packet, header in the clear) in place; returns
 * the protected length (len + 10 or + 16) or -1. `packet` must have room for it. */
static int protect(sf_srtp *s, uint8_t *packet, int len) {
  int hl = rtp_header_len(packet, len);
  if (hl < 0) return -1;
  uint32_t ssrc = ((uint32_t)packet[8] << 24) | (packet[9] << 16) | (packet[10] << 8) | packet[11];
  uint16_t seq = (packet[2] << 8) | packet[3];
  sf_stream *st = stream_of(s, ssrc);
  if (!st) return -1;
  uint32_t roc = sender_roc(st, seq);
  int out = 0;
  if (s->profile == PROFILE_CM_SHA1_80) {
    uint8_t iv[16];
    cm_iv(s, ssrc, ((uint64_t)roc << 16) | seq, iv);
    if (!EVP_EncryptInit_ex(s->cipher, NULL, NULL, NULL, iv) ||
        !EVP_EncryptUpdate(s->cipher, packet + hl, &out, packet + hl, len - hl))
      return -1;
    uint8_t tag[20];
    if (hmac_tag(s, packet, len, roc, tag)) return -1;
    memcpy(packet + len, tag, 10);
    return len + 10;
  }
  uint8_t iv[12];
  gcm_iv(s, ssrc, roc, seq, iv);
  int tmp = 0;
  if (!EVP_EncryptInit_ex(s->cipher, NULL, NULL, NULL, iv) ||
      !EVP_EncryptUpdate(s->cipher, NULL, &tmp, packet, hl) ||
      !EVP_EncryptUpdate(s->cipher, packet + hl, &out, packet + hl, len - hl) ||
      !EVP_EncryptFinal_ex(s->cipher, packet + hl + out, &tmp) ||
      !EVP_CIPHER_CTX_ctrl(s->cipher, EVP_CTRL_GCM_GET_TAG, 16, packet + len))
    return -1;
  return len + 16;
}

/* SRTCP (RFC 3711 §3.4, RFC 7714 §9): encrypts an RTCP compound packet after its
 * first 8 bytes, appends E=1 and the next SRTCP index, and the tag. `out` needs
 * len + 20 bytes. Returns the protected length or -1. */
SF_API int sf_srtcp_protect(sf_srtp *s, const uint8_t *rtcp, int len, uint8_t *out) {
  if (!s || len < 8 || len > SF_MAX_PACKET - 20) return -1;
  uint32_t ssrc = ((uint32_t)rtcp[4] << 24) | (rtcp[5] << 16) | (rtcp[6] << 8) | rtcp[7];
  uint32_t index = s->rtcp_index = (s->rtcp_index + 1) & 0x7fffffff;
  uint8_t e[4] = {0x80 | (index >> 24), index >> 16, index >> 8, index};
  int n = 0, tmp = 0;
  memcpy(out, rtcp, 8);
  if (s->profile == PROFILE_CM_SHA1_80) {
    uint8_t iv[16];
    cm_iv(s, ssrc, index, iv);
    if (!EVP_EncryptInit_ex(s->cipher, NULL, NULL, NULL, iv) ||
        !EVP_EncryptUpdate(s->cipher, out + 8, &n, rtcp + 8, len - 8))
      return -1;
    memcpy(out + len, e, 4);
    uint8_t tag[20];
    unsigned int tl = 0;
    if (!HMAC_Init_ex(s->hmac, NULL, 0, NULL, NULL) || !HMAC_Update(s->hmac, out, len + 4) ||
        !HMAC_Final(s->hmac, tag, &tl))
      return -1;
    memcpy(out + len + 4, tag, 10);
    return len + 14;
  }
  uint8_t iv[12] = {0, 0, ssrc >> 24, ssrc >> 16, ssrc >> 8, ssrc, 0, 0, index >> 24, index >> 16, index >> 8, index};
  for (int i = 0; i < 12; i++) iv[i] ^= s->salt[i];
  if (!EVP_EncryptInit_ex(s->cipher, NULL, NULL, NULL, iv) ||
      !EVP_EncryptUpdate(s->cipher, NULL, &tmp, rtcp, 8) ||
      !EVP_EncryptUpdate(s->cipher, NULL, &tmp, e, 4) ||
      !EVP_EncryptUpdate(s->cipher, out + 8, &n, rtcp + 8, len - 8) ||
      !EVP_EncryptFinal_ex(s->cipher, out + 8 + n, &tmp) ||
      !EVP_CIPHER_CTX_ctrl(s->cipher, EVP_CTRL_GCM_GET_TAG, 16, out + len))
    return -1;
  memcpy(out + len + 16, e, 4);
  return len + 20;
}

/* Protects an RTP packet given as bytes: out gets the SRTP packet (room for len + 16). */
SF_API int sf_srtp_protect(sf_srtp *s, const uint8_t *rtp, int len, uint8_t *out) {
  if (!s || len < 12 || len > SF_MAX_PACKET - 16) return -1;
  memcpy(out, rtp, len);
  pthread_mutex_lock(&s->mu);
  int n = protect(s, out, len);
  pthread_mutex_unlock(&s->mu);
  return n;
}

/* Decrypts and authenticates an SRTP packet in place; returns the RTP length or
 * -1 (malformed), -2 (authentication failed). Updates the stream's counters. */
SF_API int sf_srtp_unprotect(sf_srtp *s, uint8_t *packet, int len) {
  if (!s) return -1;
  int tag_len = s->profile == PROFILE_CM_SHA1_80 ? 10 : 16;
  int hl = rtp_header_len(packet, len - tag_len);
  if (hl < 0) { s->other_drops++; return -1; }
  uint32_t ssrc = ((uint32_t)packet[8] << 24) | (packet[9] << 16) | (packet[10] << 8) | packet[11];
  uint16_t seq = (packet[2] << 8) | packet[3];
  sf_stream *st = stream_of(s, ssrc);
  if (!st) { s->other_drops++; return -1; }
  uint32_t roc = receiver_roc(st, seq);
  int body = len - tag_len, out = 0, tmp = 0;
  if (s->profile == PROFILE_CM_SHA1_80) {
    uint8_t tag[20];
    if (hmac_tag(s, packet, body, roc, tag) || CRYPTO_memcmp(tag, packet + body, 10)) {
      st->auth_failures++;
      return -2;
    }
    uint8_t iv[16];
    cm_iv(s, ssrc, ((uint64_t)roc << 16) | seq, iv);
    if (!EVP_EncryptInit_ex(s->cipher, NULL, NULL, NULL, iv) ||
        !EVP_EncryptUpdate(s->cipher, packet + hl, &out, packet + hl, body - hl))
      return -1;
  } else {
    uint8_t iv[12];
    gcm_iv(s, ssrc, roc, seq, iv);
    if (!s->decipher) {
      s->decipher = EVP_CIPHER_CTX_new();
      if (!s->decipher || !EVP_DecryptInit_ex(s->decipher, EVP_aes_128_gcm(), NULL, s->key, NULL)) return -1;
    }
    EVP_CIPHER_CTX *d = s->decipher;
    int ok = EVP_DecryptInit_ex(d, NULL, NULL, NULL, iv) &&
             EVP_DecryptUpdate(d, NULL, &tmp, packet, hl) &&
             EVP_DecryptUpdate(d, packet + hl, &out, packet + hl, body - hl) &&
             EVP_CIPHER_CTX_ctrl(d, EVP_CTRL_GCM_SET_TAG, 16, packet + body) &&
             EVP_DecryptFinal_ex(d, packet + hl + out, &tmp) > 0;
    if (!ok) { st->auth_failures++; return -2; }
  }
  /* Statistics: extended sequence numbers, duplicates, reordering. */
  uint64_t ext = ((uint64_t)roc << 16) | seq;
  if (!st->started) {
    st->started = 1;
    st->first_ext = st->highest_ext = ext;
    st->window = 1;
    st->highest = seq;
    st->roc = roc;
  } else if (ext > st->highest_ext) {
    uint64_t shift = ext - st->highest_ext;
    st->window = shift >= 64 ? 1 : (st->window << shift) | 1;
    st->highest_ext = ext;
    st->highest = seq;
    st->roc = roc;
  } else {
    uint64_t back = st->highest_ext - ext;
    if (back < 64 && (st->window >> back) & 1) { st->duplicates++; return body; }
    if (back < 64) st->window |= 1ULL << back;
    st->reordered++;
  }
  st->received++;
  st->bytes += body;
  return body;
}

/* Counters of a context's streams: per stream 8 u64 [ssrc, received, bytes,
 * expected, reordered, duplicates, auth_failures, roc]; returns the stream count. */
SF_API int sf_srtp_stats(sf_srtp *s, uint64_t *out, int max_streams) {
  int n = s->nstreams < max_streams ? s->nstreams : max_streams;
  for (int i = 0; i < n; i++) {
    sf_stream *st = &s->streams[i];
    uint64_t *o = out + 8 * i;
    o[0] = st->ssrc;
    o[1] = st->received;
    o[2] = st->bytes;
    o[3] = st->started ? st->highest_ext - st->first_ext + 1 : 0;
    o[4] = st->reordered;
    o[5] = st->duplicates;
    o[6] = st->auth_failures;
    o[7] = st->roc;
  }
  return n;
}

/* ------------------------------------------------------------- sockets ---- */

typedef struct {
  int fd;
  sf_srtp *sink; /* receive side: RTP on this socket is decrypted and counted here */
  atomic_int refs;                /* the loop's reference + one per queued pool send */
  atomic_llong congested_until;   /* CLOCK_MONOTONIC ns: a pool send met a full buffer */
} sf_socket;

static int64_t now_ns(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void socket_unref(sf_socket *s) {
  if (atomic_fetch_sub(&s->refs, 1) != 1) return;
  close(s->fd);
  free(s);
}

typedef struct {
  int epfd;
  sf_socket *sockets[SF_MAX_SOCKETS]; /* by slot; the epoll data is the slot */
  int ready[SF_MAX_READY];
  int nready;
  uint64_t dropped_oversize;
} sf_loop;

SF_API sf_loop *sf_loop_create(void) {
  sf_loop *l = calloc(1, sizeof *l);
  if (!l) return NULL;
  l->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (l->epfd < 0) { free(l); return NULL; }
  return l;
}

static int fill_addr(int family, const char *ip, int port, struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof *ss);
  if (family == 6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    if (ip && *ip && inet_pton(AF_INET6, ip, &a->sin6_addr) != 1) return -1;
    *len = sizeof *a;
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    if (ip && *ip && inet_pton(AF_INET, ip, &a->sin_addr) != 1) return -1;
    *len = sizeof *a;
  }
  return 0;
}

/* Writes a sockaddr for ip:port into out (28 bytes); returns its length or -1. */
SF_API int sf_sockaddr(int family, const char *ip, int port, uint8_t *out) {
  struct sockaddr_storage ss;
  socklen_t len;
  if (fill_addr(family, ip, port, &ss, &len)) return -1;
  memcpy(out, &ss, len);
  return (int)len;
}

/* Opens a non-blocking UDP socket on ip (empty: any) and a port in [min, max]
 * (0, 0: any), adds it to the loop. Returns its slot (≥ 0) or -errno. The bound
 * port is written to *port_out. */
SF_API int sf_udp_open(sf_loop *l, int family, const char *ip, int min, int max, int *port_out) {
  int slot = -1;
  for (int i = 0; i < SF_MAX_SOCKETS; i++)
    if (!l->sockets[i]) { slot = i; break; }
  if (slot < 0) return -EMFILE;
  int fd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int size = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  if (family == 6) {
    int v6only = 1;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
  }
  int span = max >= min && min > 0 ? max - min + 1 : 0, err = 0;
  int start = span ? (int)(((unsigned)time(NULL) ^ (unsigned)getpid() ^ (unsigned)slot * 2654435761u) % (unsigned)span) : 0;
  for (int i = 0; i < (span ? span : 1); i++) {
    struct sockaddr_storage ss;
    socklen_t len;
    if (fill_addr(family, ip, span ? min + (start + i) % span : 0, &ss, &len)) { close(fd); return -EINVAL; }
    if (bind(fd, (struct sockaddr *)&ss, len) == 0) { err = 0; break; }
    err = errno;
    if (err != EADDRINUSE && err != EACCES) break;
  }
  if (err) { close(fd); return -err; }
  struct sockaddr_storage bound;
  socklen_t blen = sizeof bound;
  getsockname(fd, (struct sockaddr *)&bound, &blen);
  *port_out = ntohs(family == 6 ? ((struct sockaddr_in6 *)&bound)->sin6_port : ((struct sockaddr_in *)&bound)->sin_port);
  sf_socket *s = calloc(1, sizeof *s);
  if (!s) { close(fd); return -ENOMEM; }
  s->fd = fd;
  atomic_init(&s->refs, 1);
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)slot};
  if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev)) { int e = errno; close(fd); free(s); return -e; }
  l->sockets[slot] = s;
  return slot;
}

/* The slot is free at once; the fd closes when no lane holds a send for it any more. */
SF_API void sf_udp_close(sf_loop *l, int slot) {
  if (slot < 0 || slot >= SF_MAX_SOCKETS || !l->sockets[slot]) return;
  sf_socket *s = l->sockets[slot];
  epoll_ctl(l->epfd, EPOLL_CTL_DEL, s->fd, NULL);
  l->sockets[slot] = NULL;
  socket_unref(s);
}

/* Sends one datagram as it is. Returns bytes sent or -errno. */
SF_API int sf_udp_send(sf_loop *l, int slot, const uint8_t *addr, int addr_len, const uint8_t *data, int len) {
  if (slot < 0 || slot >= SF_MAX_SOCKETS || !l->sockets[slot]) return -EBADF;
  ssize_t n = sendto(l->sockets[slot]->fd, data, len, 0, (const struct sockaddr *)addr, addr_len);
  return n < 0 ? -errno : (int)n;
}

/* An RTP fixed header (RFC 3550 §5.1: version 2, no padding, extension or CSRC). */
static void rtp_header(uint8_t *o, int pt_marker, int seq, uint32_t timestamp, uint32_t ssrc) {
  o[0] = 0x80;
  o[1] = (uint8_t)pt_marker;
  o[2] = seq >> 8; o[3] = seq;
  o[4] = timestamp >> 24; o[5] = timestamp >> 16; o[6] = timestamp >> 8; o[7] = timestamp;
  o[8] = ssrc >> 24; o[9] = ssrc >> 16; o[10] = ssrc >> 8; o[11] = ssrc;
}

/* The hot path: writes an RTP header (version 2, no CSRC, no extension) before
 * payload, protects it with `srtp` and sends it. Returns bytes sent or < 0. */
SF_API int sf_send_rtp(sf_loop *l, int slot, const uint8_t *addr, int addr_len, sf_srtp *srtp,
                       int pt_marker, int seq, uint32_t timestamp, uint32_t ssrc,
                       const uint8_t *payload, int len) {
  uint8_t packet[SF_MAX_PACKET + 32];
  if (len < 0 || len > SF_MAX_PACKET - 12 - 16) return -EMSGSIZE;
  if (slot < 0 || slot >= SF_MAX_SOCKETS || !l->sockets[slot] || !srtp) return -EBADF;
  rtp_header(packet, pt_marker, seq, timestamp, ssrc);
  memcpy(packet + 12, payload, len);
  pthread_mutex_lock(&srtp->mu);
  int n = protect(srtp, packet, 12 + len);
  pthread_mutex_unlock(&srtp->mu);
  if (n < 0) return -EPROTO;
  ssize_t sent = sendto(l->sockets[slot]->fd, packet, n, 0, (const struct sockaddr *)addr, addr_len);
  return sent < 0 ? -errno : (int)sent;
}

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#define SF_GSO_MAX_SEGMENTS 64
#define SF_GSO_MAX_BYTES 65000

static atomic_int gso_unavailable; /* set once the kernel refuses UDP_SEGMENT */

static ssize_t send_segments(int fd, const uint8_t *addr, int addr_len, uint8_t *buf, int len, int seg) {
  if (len == seg || gso_unavailable) {
    if (len == seg) return sendto(fd, buf, len, 0, (const struct sockaddr *)addr, addr_len);
  } else {
    char control[CMSG_SPACE(sizeof(uint16_t))] = {0};
    struct iovec iov = {.iov_base = buf, .iov_len = (size_t)len};
    struct msghdr msg = {.msg_name = (void *)addr, .msg_namelen = (socklen_t)addr_len,
                         .msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = control, .msg_controllen = sizeof control};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_UDP;
    cm->cmsg_type = UDP_SEGMENT;
    cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    uint16_t gso = (uint16_t)seg;
    memcpy(CMSG_DATA(cm), &gso, sizeof gso);
    ssize_t n = sendmsg(fd, &msg, 0);
    if (n >= 0 || (errno != EIO && errno != EINVAL && errno != ENOPROTOOPT && errno != EOPNOTSUPP))
      return n;
    gso_unavailable = 1; /* no UDP GSO here (old kernel, device): datagram by datagram */
  }
  ssize_t total = 0;
  for (int off = 0; off < len; off += seg) {
    int n = len - off < seg ? len - off : seg;
    ssize_t r = sendto(fd, buf + off, n, 0, (const struct sockaddr *)addr, addr_len);
    if (r < 0) return total ? total : r;
    total += r;
  }
  return total;
}

/* One frame to one socket (see sf_send_rtp_frame); the caller holds srtp->mu. */
static int send_frame(int fd, const uint8_t *addr, int addr_len, sf_srtp *srtp, int payload_type,
                      int first_seq, uint32_t timestamp, uint32_t ssrc, const uint8_t *payloads,
                      int payloads_len, const uint16_t *lens, int count) {
  static __thread uint8_t buf[SF_GSO_MAX_BYTES + SF_MAX_PACKET + 64];
  int sent = 0, used = 0, seg = 0, segs = 0, group_start = 0;
  const uint8_t *p = payloads;
  for (int i = 0; i <= count; i++) {
    int size = 0, len = 0, marker = 0;
    if (i < count) {
      len = lens[i] & 0x7fff;
      marker = lens[i] >> 15;
      if (len > SF_MAX_PACKET - 12 - 16) return sent ? sent : -EMSGSIZE;
      if (len > payloads + payloads_len - p) return sent ? sent : -EINVAL; /* lens overrun */
      size = 12 + len + (srtp->profile == PROFILE_GCM_128 ? 16 : 10);
    }
    /* Flush the run when this packet can't join it: the end, another size after a
     * full-size run, a shorter one already ended it, or the limits. */
    int joins = i < count && segs > 0 && size <= seg && used + size <= SF_GSO_MAX_BYTES &&
                segs < SF_GSO_MAX_SEGMENTS && (used - group_start) == segs * seg;
    if (segs > 0 && !joins) {
      ssize_t n = send_segments(fd, addr, addr_len, buf + group_start, used - group_start, seg);
      if (n < 0) return sent ? sent : -errno;
      sent += segs;
      used = group_start = 0;
      segs = 0;
    }
    if (i == count) break;
    if (segs == 0) seg = size;
    uint8_t *o = buf + used;
    int seq = (first_seq + i) & 0xffff;
    rtp_header(o, (marker << 7) | payload_type, seq, timestamp, ssrc);
    memcpy(o + 12, p, len);
    p += len;
    if (protect(srtp, o, 12 + len) != size) return sent ? sent : -EPROTO;
    used += size;
    segs++;
  }
  return sent;
}

/*
 * One video frame to one viewer in as few system calls as UDP GSO allows: `count`
 * payloads packed back to back in `payloads` (payloads_len bytes), their lengths in `lens` (bit 15: the
 * RTP marker), sequence numbers first_seq, first_seq + 1, …, one timestamp. Each
 * is written with its RTP header, protected, and runs of equal-size packets leave
 * in one sendmsg(UDP_SEGMENT). Returns packets sent, or a negative errno when
 * none was (a partial send returns the count that left).
 */
SF_API int sf_send_rtp_frame(sf_loop *l, int slot, const uint8_t *addr, int addr_len, sf_srtp *srtp,
                             int payload_type, int first_seq, uint32_t timestamp, uint32_t ssrc,
                             const uint8_t *payloads, int payloads_len, const uint16_t *lens,
                             int count) {
  if (slot < 0 || slot >= SF_MAX_SOCKETS || !l->sockets[slot] || !srtp) return -EBADF;
  pthread_mutex_lock(&srtp->mu);
  int n = send_frame(l->sockets[slot]->fd, addr, addr_len, srtp, payload_type, first_seq,
                     timestamp, ssrc, payloads, payloads_len, lens, count);
  pthread_mutex_unlock(&srtp->mu);
  return n;
}

/* Protects an RTCP compound packet with an SRTCP context and sends it. */
SF_API int sf_send_rtcp(sf_loop *l, int slot, const uint8_t *addr, int addr_len, sf_srtp *srtcp,
                        const uint8_t *rtcp, int len) {
  uint8_t out[SF_MAX_PACKET + 32];
  if (slot < 0 || slot >= SF_MAX_SOCKETS || !l->sockets[slot]) return -EBADF;
  int n = sf_srtcp_protect(srtcp, rtcp, len, out);
  if (n < 0) return -EPROTO;
  ssize_t sent = sendto(l->sockets[slot]->fd, out, n, 0, (const struct sockaddr *)addr, addr_len);
  return sent < 0 ? -errno : (int)sent;
}

/* Receive side: RTP arriving on this socket is unprotected with `sink` and only
 * counted (RTCP, STUN and DTLS still go to JavaScript). NULL detaches. */
SF_API void sf_udp_set_sink(sf_loop *l, int slot, sf_srtp *sink) {
  if (slot >= 0 && slot < SF_MAX_SOCKETS && l->sockets[slot]) l->sockets[slot]->sink = sink;
}

/* Blocks up to timeout_ms for readable sockets (Deno runs it off the main
 * thread); returns how many are ready. Only one sf_wait at a time per loop. */
SF_API int sf_wait(sf_loop *l, int timeout_ms) {
  struct epoll_event evs[SF_MAX_READY];
  int n = epoll_wait(l->epfd, evs, SF_MAX_READY, timeout_ms);
  if (n < 0) n = errno == EINTR ? 0 : -errno;
  l->nready = n > 0 ? n : 0;
  for (int i = 0; i < l->nready; i++) l->ready[i] = (int)evs[i].data.u32;
  return n;
}

static int is_rtp(const uint8_t *p, int len) {
  /* RFC 7983 demux: 128..191 is RTP/RTCP; RTCP packet types 192..223 (RFC 5761). */
  return len >= 12 && p[0] >= 128 && p[0] <= 191 && !(p[1] >= 192 && p[1] <= 223);
}

/* Reads what the last sf_wait found ready into out as records
 * [slot u16][port u16][family u8][addr 16][len u16][data], in arrival order per
 * socket. Media for a socket with a sink is consumed here. Returns bytes written;
 * stops early when out is full (the rest stays queued in the kernel). */
SF_API int sf_drain(sf_loop *l, uint8_t *out, int cap) {
  int used = 0;
  uint8_t buf[SF_MAX_PACKET + 64];
  for (int r = 0; r < l->nready; r++) {
    int slot = l->ready[r];
    sf_socket *s = slot >= 0 && slot < SF_MAX_SOCKETS ? l->sockets[slot] : NULL;
    if (!s) continue;
    for (int budget = 0; budget < 4096; budget++) {
      if (cap - used < 23 + SF_MAX_PACKET) return used;
      struct sockaddr_storage from;
      socklen_t flen = sizeof from;
      ssize_t n = recvfrom(s->fd, buf, sizeof buf, MSG_TRUNC, (struct sockaddr *)&from, &flen);
      if (n < 0) break;
      if (n > SF_MAX_PACKET) { l->dropped_oversize++; continue; }
      if (s->sink && is_rtp(buf, (int)n)) {
        sf_srtp_unprotect(s->sink, buf, (int)n);
        continue;
      }
      uint8_t *o = out + used;
      o[0] = slot >> 8; o[1] = slot;
      memset(o + 5, 0, 16);
      if (from.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&from;
        o[2] = ntohs(a->sin6_port) >> 8; o[3] = ntohs(a->sin6_port);
        o[4] = 6;
        memcpy(o + 5, &a->sin6_addr, 16);
      } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&from;
        o[2] = ntohs(a->sin_port) >> 8; o[3] = ntohs(a->sin_port);
        o[4] = 4;
        memcpy(o + 5, &a->sin_addr, 4);
      }
      o[21] = n >> 8; o[22] = n;
      memcpy(o + 23, buf, n);
      used += 23 + (int)n;
    }
  }
  l->nready = 0;
  return used;
}

SF_API void sf_loop_destroy(sf_loop *l) {
  if (!l) return;
  for (int i = 0; i < SF_MAX_SOCKETS; i++) sf_udp_close(l, i);
  close(l->epfd);
  free(l);
}

/* ---------------------------------------------------------- send pool ---- */

#define SF_POOL_MAX_LANES 16
#define SF_POOL_QUEUE 64      /* frames waiting per lane; beyond: that lane's share is dropped */
#define SF_POOL_LATENCIES 4096 /* completed frames' latencies kept until read */
#define SF_TARGET_BYTES 64     /* one viewer's record in sf_pool_send_frame's `targets` */

/* One room frame, shared by the lanes that send it; freed by the last one. */
typedef struct {
  atomic_int lanes_left;
  int64_t started_ns; /* CLOCK_MONOTONIC when the caller began the frame (its `pre_us` back) */
  int count, payloads_len;
  uint16_t *lens;
  uint8_t *payloads;
} sf_frame;

typedef struct {
  sf_socket *sock; /* referenced */
  sf_srtp *srtp;   /* referenced */
  uint8_t addr[28];
  int addr_len, payload_type, first_seq;
  uint32_t timestamp, ssrc;
} sf_target;

typedef struct {
  sf_frame *frame;
  int n;
  sf_target targets[];
} sf_job;

struct sf_pool;

typedef struct {
  struct sf_pool *pool;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  sf_job *queue[SF_POOL_QUEUE];
  int head, len, stop, started;
  atomic_llong cpu_ns; /* this lane's thread CPU time spent sending */
} sf_lane;

typedef struct sf_pool {
  int nlanes;
  sf_lane lanes[SF_POOL_MAX_LANES];
  pthread_mutex_t lat_mu;
  uint32_t latencies_us[SF_POOL_LATENCIES];
  int lat_head, lat_len;
  atomic_ullong packets_sent, packets_dropped, frames_dropped, lat_overwritten;
} sf_pool;

static void frame_done(sf_pool *p, sf_frame *f) {
  if (atomic_fetch_sub(&f->lanes_left, 1) != 1) return;
  int64_t us = (now_ns(CLOCK_MONOTONIC) - f->started_ns) / 1000;
  pthread_mutex_lock(&p->lat_mu);
  if (p->lat_len == SF_POOL_LATENCIES) { p->lat_head = (p->lat_head + 1) % SF_POOL_LATENCIES; p->lat_len--; atomic_fetch_add(&p->lat_overwritten, 1); }
  p->latencies_us[(p->lat_head + p->lat_len++) % SF_POOL_LATENCIES] = us < 0 ? 0 : us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
  pthread_mutex_unlock(&p->lat_mu);
  free(f);
}

static void job_release(sf_pool *p, sf_job *job) {
  for (int i = 0; i < job->n; i++) {
    socket_unref(job->targets[i].sock);
    srtp_unref(job->targets[i].srtp);
  }
  frame_done(p, job->frame);
  free(job);
}

static void run_job(sf_pool *p, sf_job *job) {
  sf_frame *f = job->frame;
  uint64_t sent = 0, dropped = 0;
  for (int i = 0; i < job->n; i++) {
    sf_target *t = &job->targets[i];
    pthread_mutex_lock(&t->srtp->mu);
    int n = send_frame(t->sock->fd, t->addr, t->addr_len, t->srtp, t->payload_type, t->first_seq,
                       t->timestamp, t->ssrc, f->payloads, f->payloads_len, f->lens, f->count);
    pthread_mutex_unlock(&t->srtp->mu);
    int ok = n < 0 ? 0 : n;
    sent += ok;
    if (ok < f->count) {
      dropped += f->count - ok;
      /* A full buffer (EAGAIN, or a partial send): the viewer is slow for a while. */
      if (n >= 0 || n == -EAGAIN)
        atomic_store(&t->sock->congested_until, now_ns(CLOCK_MONOTONIC) + 200000000LL);
    }
  }
  atomic_fetch_add(&p->packets_sent, sent);
  if (dropped) atomic_fetch_add(&p->packets_dropped, dropped);
}

static void *lane_main(void *arg) {
  sf_lane *lane = arg;
  for (;;) {
    pthread_mutex_lock(&lane->mu);
    while (!lane->len && !lane->stop) pthread_cond_wait(&lane->cv, &lane->mu);
    if (!lane->len) { pthread_mutex_unlock(&lane->mu); return NULL; }
    sf_job *job = lane->queue[lane->head];
    lane->head = (lane->head + 1) % SF_POOL_QUEUE;
    lane->len--;
    pthread_mutex_unlock(&lane->mu);
    int64_t cpu0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
    run_job(lane->pool, job);
    job_release(lane->pool, job);
    atomic_fetch_add(&lane->cpu_ns, now_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0);
  }
}

/* Starts `lanes` sending threads (1..SF_POOL_MAX_LANES). NULL on failure. */
SF_API sf_pool *sf_pool_create(int lanes) {
  if (lanes < 1 || lanes > SF_POOL_MAX_LANES) return NULL;
  sf_pool *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  pthread_mutex_init(&p->lat_mu, NULL);
  for (int i = 0; i < lanes; i++) {
    sf_lane *lane = &p->lanes[i];
    lane->pool = p;
    pthread_mutex_init(&lane->mu, NULL);
    pthread_cond_init(&lane->cv, NULL);
    if (pthread_create(&lane->thread, NULL, lane_main, lane)) break;
    char name[16];
    snprintf(name, sizeof name, "sluice-send-%d", i);
    pthread_setname_np(lane->thread, name); /* what top -H and /proc/<pid>/task show */
    lane->started = 1;
    p->nlanes++;
  }
  if (p->nlanes == 0) { free(p); return NULL; }
  return p;
}

SF_API int sf_pool_lanes(sf_pool *p) { return p ? p->nlanes : 0; }

/*
 * Sends one video frame to many viewers through the lanes. `payloads`/`lens`/
 * `count` as sf_send_rtp_frame (copied: the caller's buffers are free on return).
 * `targets` holds `ntargets` records of SF_TARGET_BYTES, little-endian:
 *   [0] lane u8  [1] payload type u8  [2] sockaddr length u8  [3] 0
 *   [4] socket slot i32  [8] first sequence number u32  [12] timestamp u32
 *   [16] SSRC u32  [20] 0 u32  [24] SRTP context pointer u64  [32] sockaddr (≤ 28 bytes)
 * `pre_us`: how long ago the caller began this frame (it counts in the latency).
 * Returns the viewers queued (a closed socket, a full lane or a bad record is skipped).
 */
SF_API int sf_pool_send_frame(sf_pool *p, sf_loop *l, const uint8_t *payloads, int payloads_len,
                              const uint16_t *lens, int count, const uint8_t *targets,
                              int ntargets, int pre_us) {
  if (!p || !l || count <= 0 || payloads_len < 0 || ntargets <= 0) return 0;
  int per_lane[SF_POOL_MAX_LANES] = {0};
  for (int i = 0; i < ntargets; i++) {
    int lane = targets[i * SF_TARGET_BYTES];
    if (lane < p->nlanes) per_lane[lane]++;
  }
  sf_frame *f = malloc(sizeof *f + (size_t)count * sizeof(uint16_t) + (size_t)payloads_len);
  if (!f) return 0;
  f->count = count;
  f->payloads_len = payloads_len;
  f->lens = (uint16_t *)(f + 1);
  f->payloads = (uint8_t *)(f->lens + count);
  memcpy(f->lens, lens, (size_t)count * sizeof(uint16_t));
  memcpy(f->payloads, payloads, (size_t)payloads_len);
  f->started_ns = now_ns(CLOCK_MONOTONIC) - (int64_t)pre_us * 1000;
  sf_job *jobs[SF_POOL_MAX_LANES] = {0};
  int queued = 0, nlanes_used = 0;
  for (int lane = 0; lane < p->nlanes; lane++) {
    if (!per_lane[lane]) continue;
    jobs[lane] = malloc(sizeof(sf_job) + (size_t)per_lane[lane] * sizeof(sf_target));
    if (jobs[lane]) { jobs[lane]->frame = f; jobs[lane]->n = 0; nlanes_used++; }
  }
  for (int i = 0; i < ntargets; i++) {
    const uint8_t *r = targets + (size_t)i * SF_TARGET_BYTES;
    int lane = r[0], addr_len = r[2];
    if (lane >= p->nlanes || !jobs[lane] || addr_len > 28) continue;
    int32_t slot;
    uint32_t seq, ts, ssrc;
    uint64_t ptr;
    memcpy(&slot, r + 4, 4);
    memcpy(&seq, r + 8, 4);
    memcpy(&ts, r + 12, 4);
    memcpy(&ssrc, r + 16, 4);
    memcpy(&ptr, r + 24, 8);
    sf_srtp *srtp = (sf_srtp *)(uintptr_t)ptr;
    if (slot < 0 || slot >= SF_MAX_SOCKETS || !l->sockets[slot] || !srtp) continue;
    sf_target *t = &jobs[lane]->targets[jobs[lane]->n++];
    t->sock = l->sockets[slot];
    atomic_fetch_add(&t->sock->refs, 1);
    t->srtp = srtp;
    atomic_fetch_add(&srtp->refs, 1);
    memcpy(t->addr, r + 32, addr_len);
    t->addr_len = addr_len;
    t->payload_type = r[1];
    t->first_seq = (int)(seq & 0xffff);
    t->timestamp = ts;
    t->ssrc = ssrc;
  }
  for (int lane = 0; lane < p->nlanes; lane++) {
    if (jobs[lane] && jobs[lane]->n == 0) { free(jobs[lane]); jobs[lane] = NULL; nlanes_used--; }
  }
  if (nlanes_used == 0) { free(f); return 0; }
  atomic_init(&f->lanes_left, nlanes_used);
  for (int lane = 0; lane < p->nlanes; lane++) {
    sf_job *job = jobs[lane];
    if (!job) continue;
    sf_lane *ln = &p->lanes[lane];
    int n = job->n; /* once queued, the job belongs to the lane (which may free it at once) */
    pthread_mutex_lock(&ln->mu);
    int full = ln->len == SF_POOL_QUEUE;
    if (!full) {
      ln->queue[(ln->head + ln->len++) % SF_POOL_QUEUE] = job;
      pthread_cond_signal(&ln->cv);
    }
    pthread_mutex_unlock(&ln->mu);
    if (full) {
      atomic_fetch_add(&p->frames_dropped, 1);
      atomic_fetch_add(&p->packets_dropped, (unsigned long long)n * (unsigned long long)count);
      job_release(p, job);
    } else {
      queued += n;
    }
  }
  return queued;
}

/* 1 while a pool send to this socket met a full buffer in the last 200 ms. */
SF_API int sf_udp_congested(sf_loop *l, int slot) {
  if (slot < 0 || slot >= SF_MAX_SOCKETS || !l->sockets[slot]) return 0;
  return atomic_load(&l->sockets[slot]->congested_until) > now_ns(CLOCK_MONOTONIC);
}

/* Counters: [0] packets sent [1] packets dropped [2] lane-frames dropped (queue full)
 * [3] latencies overwritten unread [4] frames waiting, then per lane its CPU ns. */
SF_API int sf_pool_stats(sf_pool *p, uint64_t *out, int cap) {
  if (!p) return 0;
  uint64_t waiting = 0;
  for (int i = 0; i < p->nlanes; i++) {
    pthread_mutex_lock(&p->lanes[i].mu);
    waiting += p->lanes[i].len;
    pthread_mutex_unlock(&p->lanes[i].mu);
  }
  uint64_t v[5 + SF_POOL_MAX_LANES] = {atomic_load(&p->packets_sent), atomic_load(&p->packets_dropped),
                                       atomic_load(&p->frames_dropped), atomic_load(&p->lat_overwritten),
                                       waiting};
  for (int i = 0; i < p->nlanes; i++) v[5 + i] = (uint64_t)atomic_load(&p->lanes[i].cpu_ns);
  int n = 5 + p->nlanes;
  for (int i = 0; i < n && i < cap; i++) out[i] = v[i];
  return n;
}

/* Moves up to `cap` latencies (µs, frame begun → its last packet sent to its last
 * viewer) into out, oldest first; returns how many. */
SF_API int sf_pool_latencies(sf_pool *p, uint32_t *out, int cap) {
  if (!p) return 0;
  pthread_mutex_lock(&p->lat_mu);
  int n = p->lat_len < cap ? p->lat_len : cap;
  for (int i = 0; i < n; i++) out[i] = p->latencies_us[(p->lat_head + i) % SF_POOL_LATENCIES];
  p->lat_head = (p->lat_head + n) % SF_POOL_LATENCIES;
  p->lat_len -= n;
  pthread_mutex_unlock(&p->lat_mu);
  return n;
}

/* Stops the lanes after the frames they hold (sent, then freed) and frees the pool. */
SF_API void sf_pool_destroy(sf_pool *p) {
  if (!p) return;
  for (int i = 0; i < p->nlanes; i++) {
    sf_lane *lane = &p->lanes[i];
    pthread_mutex_lock(&lane->mu);
    lane->stop = 1;
    pthread_cond_signal(&lane->cv);
    pthread_mutex_unlock(&lane->mu);
    pthread_join(lane->thread, NULL);
    pthread_mutex_destroy(&lane->mu);
    pthread_cond_destroy(&lane->cv);
  }
  pthread_mutex_destroy(&p->lat_mu);
  free(p);
}
