/*
 * Sluice video transcode shim: H.264 (any profile, B-frames, any GOP) in,
 * H.264 Constrained Baseline without B-frames out, in one call per access unit.
 *
 * Decoding is FFmpeg's libavcodec (LGPL), encoding Cisco's openh264 (BSD-2),
 * scaling / pixel format conversion libswscale. Deno reaches this file through
 * FFI (lib/codec/video/native.ts); the shim exists so that no C struct layout
 * (AVCodecContext, AVFrame, SEncParamExt, SFrameBSInfo) is ever read from
 * TypeScript: every argument here is an integer, a double or a byte buffer.
 *
 * Life of a picture:
 *   push(AVCC access unit, pts, dts) → converted to Annex B (parameter sets from
 *   the avcC prepended to the first unit and after set_extradata) → libavcodec,
 *   which reorders B-frames and hands pictures back in presentation order with
 *   the pts of their packet → scaled when taller than max_height or not 8-bit
 *   4:2:0 → openh264 → NAL units re-framed with 4-byte lengths into an output
 *   queue read with pop().
 *
 * Keyframes: the first picture and every picture whose pts is keyint_ms past
 * the last IDR are IDR, and force_idr() makes the next picture one. openh264's
 * own intra period is off, so the cadence follows time, not frame counts.
 *
 * Not thread-safe: one handle belongs to one thread (Sluice: one Worker).
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavutil/imgutils.h>
#include <libavutil/log.h>
#include <libswscale/swscale.h>
#include <wels/codec_api.h>

/* Bumped whenever a signature below changes; native.ts refuses a stale build. */
#define SLUICE_TC_ABI_VERSION 2

#define SLUICE_EXPORT __attribute__((visibility("default")))

/* Bounds on what a caller may hand us (an avcC or access unit beyond these is not video). */
#define MAX_AVCC_BYTES (64 * 1024)
#define MAX_ACCESS_UNIT_BYTES (32 * 1024 * 1024)
/* Encoded pictures waiting for pop(); a caller that never pops loses the oldest. */
#define MAX_QUEUED_OUTPUTS 256

/* The layout of stats(): keep in step with NATIVE_STATS in lib/codec/video/native.ts. */
enum {
  STAT_PACKETS_IN,
  STAT_PICTURES_DECODED,
  STAT_PICTURES_ENCODED,
  STAT_DECODE_ERRORS,
  STAT_ENCODE_ERRORS,
  STAT_OUTPUTS_DISCARDED,
  STAT_IDR_FORCED,
  STAT_SOURCE_WIDTH,
  STAT_SOURCE_HEIGHT,
  STAT_OUTPUT_WIDTH,
  STAT_OUTPUT_HEIGHT,
  STAT_ENCODER_RESETS,
  STAT_CATCH_UP_SKIPPED, /* catch-up pictures decoded (as references) but not encoded */
  STAT_COUNT
};

typedef struct {
  uint8_t *data; /* NAL units, each behind a 4-byte big-endian length */
  int size;
  int64_t pts;
  int keyframe;
  int width;
  int height;
} OutputPicture;

typedef struct {
  /* decoder */
  AVCodecContext *dec;
  AVPacket *pkt;
  AVFrame *frame;
  uint8_t *annexb; /* scratch: one access unit in Annex B, plus input padding */
  size_t annexb_cap;
  uint8_t *param_sets; /* Annex B SPS/PPS to prepend to the next packet */
  size_t param_sets_len;

  /* scaler (only when scaling or converting) */
  struct SwsContext *sws;
  uint8_t *scaled_data[4];
  int scaled_linesize[4];

  /* encoder (created at the first picture, re-created when the picture size changes) */
  ISVCEncoder *enc;
  int src_w, src_h, src_fmt;
  int out_w, out_h;
  double fps_hint; /* from create(); 0 = from the stream */
  double fps;
  int bitrate;
  int keyint_ms;
  int max_height;
  int complexity;
  int64_t last_idr_pts;
  bool have_idr;
  bool force_idr;
  /* Catch-up: pictures before catch_up_until are decoded only as far as later ones need. */
  bool catching_up;
  int64_t catch_up_until;

  /* output queue: a ring of OutputPicture */
  OutputPicture queue[MAX_QUEUED_OUTPUTS];
  int queue_head;
  int queue_len;

  int64_t stats[STAT_COUNT];
  char error[256];
} SluiceTranscoder;

static void set_error(SluiceTranscoder *t, const char *fmt, const char *detail, int code) {
  snprintf(t->error, sizeof t->error, fmt, detail, code);
}

static void copy_error(char *dst, int cap, const char *msg) {
  if (dst && cap > 0) snprintf(dst, (size_t)cap, "%s", msg);
}

static bool ensure_capacity(uint8_t **buf, size_t *cap, size_t need) {
  if (need <= *cap) return true;
  size_t next = *cap ? *cap : 4096;
  while (next < need) next *= 2;
  uint8_t *grown = realloc(*buf, next);
  if (!grown) return false;
  *buf = grown;
  *cap = next;
  return true;
}

/* Reads the avcC's SPS and PPS into Annex B; returns the length or -1 when malformed. */
static long avcc_param_sets_to_annexb(const uint8_t *avcc, int len, uint8_t **out) {
  if (!avcc || len < 7 || len > MAX_AVCC_BYTES || avcc[0] != 1) return -1;
  uint8_t *buf = malloc((size_t)len * 2 + 64);
  if (!buf) return -1;
  size_t w = 0;
  int pos = 5;
  for (int kind = 0; kind < 2; kind++) {
    if (pos >= len) {
      if (kind == 1) break; /* a record without PPS: the stream must carry them */
      free(buf);
      return -1;
    }
    int count = kind == 0 ? (avcc[pos] & 0x1f) : avcc[pos];
    pos++;
    for (int i = 0; i < count; i++) {
      if (pos + 2 > len) goto bad;
      int n = (avcc[pos] << 8) | avcc[pos + 1];
      pos += 2;
      if (n == 0 || pos + n > len) goto bad;
      static const uint8_t start[4] = {0, 0, 0, 1};
      memcpy(buf + w, start, 4);
      memcpy(buf + w + 4, avcc + pos, (size_t)n);
      w += 4 + (size_t)n;
      pos += n;
    }
  }
  *out = buf;
  return (long)w;
bad:
  free(buf);
  return -1;
}

static void free_scaler(SluiceTranscoder *t) {
  if (t->sws) sws_freeContext(t->sws);
  t->sws = NULL;
  if (t->scaled_data[0]) av_freep(&t->scaled_data[0]);
  memset(t->scaled_data, 0, sizeof t->scaled_data);
}

static void free_encoder(SluiceTranscoder *t) {
  if (t->enc) {
    (*t->enc)->Uninitialize(t->enc);
    WelsDestroySVCEncoder(t->enc);
  }
  t->enc = NULL;
}

/* The output size: the source's cut to even numbers, or scaled to max_height when taller. */
static void output_size(const SluiceTranscoder *t, int w, int h, int *ow, int *oh) {
  if (t->max_height > 0 && h > t->max_height) {
    *oh = t->max_height & ~1;
    *ow = (int)(((int64_t)w * *oh + h) / (2 * (int64_t)h)) * 2; /* nearest even width */
  } else {
    *ow = w & ~1;
    *oh = h & ~1;
  }
  if (*ow < 2) *ow = 2;
  if (*oh < 2) *oh = 2;
}

static double stream_fps(SluiceTranscoder *t) {
  double fps = t->fps_hint;
  if (fps <= 0 && t->dec->framerate.num > 0 && t->dec->framerate.den > 0) {
    fps = av_q2d(t->dec->framerate);
  }
  if (!(fps > 0)) fps = 30;
  if (fps < 1) fps = 1;
  if (fps > 60) fps = 60; /* openh264's MAX_FRAME_RATE */
  return fps;
}

/* (Re)creates the encoder and scaler for a picture of w×h in pixel format fmt. */
static bool setup_encoder(SluiceTranscoder *t, int w, int h, int fmt) {
  free_encoder(t);
  free_scaler(t);
  t->src_w = w;
  t->src_h = h;
  t->src_fmt = fmt;
  output_size(t, w, h, &t->out_w, &t->out_h);
  t->fps = stream_fps(t);

  bool direct = (fmt == AV_PIX_FMT_YUV420P || fmt == AV_PIX_FMT_YUVJ420P) &&
                t->out_h == (h & ~1) && t->out_w == (w & ~1);
  if (!direct) {
    t->sws = sws_getContext(w, h, fmt, t->out_w, t->out_h, AV_PIX_FMT_YUV420P, SWS_BILINEAR,
                            NULL, NULL, NULL);
    if (!t->sws) {
      const char *name = av_get_pix_fmt_name(fmt);
      set_error(t, "swscale cannot convert %s pictures %d pixels wide", name ? name : "unknown", w);
      return false;
    }
    if (av_image_alloc(t->scaled_data, t->scaled_linesize, t->out_w, t->out_h,
                       AV_PIX_FMT_YUV420P, 32) < 0) {
      set_error(t, "%s: out of memory for a %d-pixel-wide scaled picture", "swscale", t->out_w);
      return false;
    }
  }

  if (WelsCreateSVCEncoder(&t->enc) != 0 || !t->enc) {
    t->enc = NULL;
    set_error(t, "%s failed (%d)", "WelsCreateSVCEncoder", 0);
    return false;
  }
  /* Quiet before InitializeExt, which warns on stdout that frame skip is off (as meant). */
  int level = WELS_LOG_QUIET;
  (*t->enc)->SetOption(t->enc, ENCODER_OPTION_TRACE_LEVEL, &level);
  SEncParamExt p;
  (*t->enc)->GetDefaultParams(t->enc, &p);
  p.iUsageType = CAMERA_VIDEO_REAL_TIME;
  p.iPicWidth = t->out_w;
  p.iPicHeight = t->out_h;
  p.iTargetBitrate = t->bitrate;
  p.iRCMode = RC_BITRATE_MODE;
  p.fMaxFrameRate = (float)t->fps;
  p.iTemporalLayerNum = 1;
  p.iSpatialLayerNum = 1;
  SSpatialLayerConfig *layer = &p.sSpatialLayers[0];
  layer->iVideoWidth = t->out_w;
  layer->iVideoHeight = t->out_h;
  layer->fFrameRate = (float)t->fps;
  layer->iSpatialBitrate = t->bitrate;
  layer->iMaxSpatialBitrate = UNSPECIFIED_BIT_RATE;
  layer->uiProfileIdc = PRO_BASELINE;
  layer->uiLevelIdc = LEVEL_UNKNOWN;
  layer->sSliceArgument.uiSliceMode = SM_SINGLE_SLICE;
  layer->sSliceArgument.uiSliceNum = 1;
  p.iComplexityMode = (ECOMPLEXITY_MODE)t->complexity;
  p.uiIntraPeriod = 0;            /* IDR cadence is ours, by pts */
  p.iNumRefFrame = 1;
  p.eSpsPpsIdStrategy = CONSTANT_ID; /* the same SPS/PPS ids at every IDR: SDP-friendly */
  p.bPrefixNalAddingCtrl = false;
  p.bEnableSSEI = false;
  p.bSimulcastAVC = false;
  p.iPaddingFlag = 0;
  p.iEntropyCodingModeFlag = 0; /* CAVLC: Constrained Baseline */
  p.bEnableFrameSkip = false;   /* one output per input picture, always */
  p.iMaxBitrate = UNSPECIFIED_BIT_RATE;
  p.bEnableLongTermReference = false;
  p.iMultipleThreadIdc = 1; /* one thread: the Worker is the unit of parallelism */
  p.bEnableDenoise = false;
  p.bEnableSceneChangeDetect = false; /* would add non-IDR I frames no viewer can join on */
  p.bEnableBackgroundDetection = true;
  p.bEnableAdaptiveQuant = true;
  p.bEnableFrameCroppingFlag = true;
  int rv = (*t->enc)->InitializeExt(t->enc, &p);
  if (rv != 0) {
    set_error(t, "openh264 %s failed (%d)", "InitializeExt", rv);
    free_encoder(t);
    return false;
  }
  int format = videoFormatI420;
  (*t->enc)->SetOption(t->enc, ENCODER_OPTION_DATAFORMAT, &format);
  t->have_idr = false; /* a new encoder starts with an IDR anyway */
  t->stats[STAT_SOURCE_WIDTH] = w;
  t->stats[STAT_SOURCE_HEIGHT] = h;
  t->stats[STAT_OUTPUT_WIDTH] = t->out_w;
  t->stats[STAT_OUTPUT_HEIGHT] = t->out_h;
  t->stats[STAT_ENCODER_RESETS]++;
  return true;
}

/* Forces an IDR through the vtable's real C++ signature ForceIntraFrame(bool bIDR, int iLayerId):
 * the C header declares it without iLayerId, which leaves the layer argument to chance. */
static void force_intra_frame(ISVCEncoder *enc) {
  typedef int (*ForceIntraFrameFn)(ISVCEncoder *, bool, int);
  ForceIntraFrameFn fn = (ForceIntraFrameFn)(void *)(*enc)->ForceIntraFrame;
  fn(enc, true, -1);
}

static void enqueue(SluiceTranscoder *t, OutputPicture out) {
  if (t->queue_len == MAX_QUEUED_OUTPUTS) {
    OutputPicture *old = &t->queue[t->queue_head];
    free(old->data);
    t->queue_head = (t->queue_head + 1) % MAX_QUEUED_OUTPUTS;
    t->queue_len--;
    t->stats[STAT_OUTPUTS_DISCARDED]++;
  }
  t->queue[(t->queue_head + t->queue_len) % MAX_QUEUED_OUTPUTS] = out;
  t->queue_len++;
}

/* Length of the start code at p (which has n bytes), or 0. */
static int start_code_length(const uint8_t *p, int n) {
  if (n >= 4 && p[0] == 0 && p[1] == 0 && p[2] == 0 && p[3] == 1) return 4;
  if (n >= 3 && p[0] == 0 && p[1] == 0 && p[2] == 1) return 3;
  return 0;
}

static void encode_picture(SluiceTranscoder *t, const AVFrame *f) {
  int fmt = f->format;
  if (!t->enc || f->width != t->src_w || f->height != t->src_h || fmt != t->src_fmt) {
    if (!setup_encoder(t, f->width, f->height, fmt)) {
      t->src_w = 0; /* retry at the next picture */
      t->stats[STAT_ENCODE_ERRORS]++;
      return;
    }
  }
  int64_t pts = f->pts != AV_NOPTS_VALUE ? f->pts : f->best_effort_timestamp;

  SSourcePicture pic;
  memset(&pic, 0, sizeof pic);
  pic.iColorFormat = videoFormatI420;
  pic.iPicWidth = t->out_w;
  pic.iPicHeight = t->out_h;
  pic.uiTimeStamp = pts;
  if (t->sws) {
    sws_scale(t->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, t->scaled_data,
              t->scaled_linesize);
    for (int i = 0; i < 3; i++) {
      pic.pData[i] = t->scaled_data[i];
      pic.iStride[i] = t->scaled_linesize[i];
    }
  } else {
    for (int i = 0; i < 3; i++) {
      pic.pData[i] = f->data[i];
      pic.iStride[i] = f->linesize[i];
    }
  }

  double half_frame_ms = 500.0 / t->fps;
  /* A clock that jumps back (a publisher restarting at 0) would hold off the next IDR for as
   * long as it jumped: treat it as due. */
  bool due = t->keyint_ms > 0 && t->have_idr &&
             ((double)(pts - t->last_idr_pts) >= t->keyint_ms - half_frame_ms ||
              pts < t->last_idr_pts);
  if (t->force_idr || due) {
    force_intra_frame(t->enc);
    if (t->force_idr) t->stats[STAT_IDR_FORCED]++;
    t->force_idr = false;
  }

  SFrameBSInfo info;
  memset(&info, 0, sizeof info);
  int rv = (*t->enc)->EncodeFrame(t->enc, &pic, &info);
  if (rv != 0 || info.eFrameType == videoFrameTypeInvalid) {
    snprintf(t->error, sizeof t->error, "openh264 EncodeFrame failed (%d) at pts %lld", rv,
             (long long)pts);
    t->stats[STAT_ENCODE_ERRORS]++;
    return;
  }
  if (info.eFrameType == videoFrameTypeSkip) return; /* frame skip is off; kept for safety */

  size_t total = 0;
  for (int l = 0; l < info.iLayerNum; l++) {
    const SLayerBSInfo *layer = &info.sLayerInfo[l];
    for (int n = 0; n < layer->iNalCount; n++) total += 4 + (size_t)layer->pNalLengthInByte[n];
  }
  OutputPicture out = {0};
  out.data = malloc(total ? total : 1);
  if (!out.data) {
    t->stats[STAT_ENCODE_ERRORS]++;
    return;
  }
  size_t w = 0;
  for (int l = 0; l < info.iLayerNum; l++) {
    const SLayerBSInfo *layer = &info.sLayerInfo[l];
    const uint8_t *p = layer->pBsBuf;
    for (int n = 0; n < layer->iNalCount; n++) {
      int len = layer->pNalLengthInByte[n];
      int sc = start_code_length(p, len);
      uint32_t body = (uint32_t)(len - sc);
      if (body > 0) {
        out.data[w] = (uint8_t)(body >> 24);
        out.data[w + 1] = (uint8_t)(body >> 16);
        out.data[w + 2] = (uint8_t)(body >> 8);
        out.data[w + 3] = (uint8_t)body;
        memcpy(out.data + w + 4, p + sc, body);
        w += 4 + body;
      }
      p += len;
    }
  }
  out.size = (int)w;
  out.pts = pts;
  out.keyframe = info.eFrameType == videoFrameTypeIDR;
  out.width = t->out_w;
  out.height = t->out_h;
  if (out.keyframe) {
    t->last_idr_pts = pts;
    t->have_idr = true;
  }
  t->stats[STAT_PICTURES_ENCODED]++;
  enqueue(t, out);
}

static void drain_decoder(SluiceTranscoder *t) {
  for (;;) {
    int ret = avcodec_receive_frame(t->dec, t->frame);
    if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) return;
    if (ret < 0) {
      t->stats[STAT_DECODE_ERRORS]++;
      return;
    }
    t->stats[STAT_PICTURES_DECODED]++;
    int64_t pts = t->frame->pts != AV_NOPTS_VALUE ? t->frame->pts : t->frame->best_effort_timestamp;
    if (t->catching_up && pts < t->catch_up_until) {
      t->stats[STAT_CATCH_UP_SKIPPED]++;
    } else {
      if (t->catching_up) {
        /* The first picture of the live edge: an IDR, so viewers see it at once. */
        t->catching_up = false;
        t->force_idr = true;
      }
      encode_picture(t, t->frame);
    }
    av_frame_unref(t->frame);
  }
}

/** The ABI version this build implements (see SLUICE_TC_ABI_VERSION). */
SLUICE_EXPORT int sluice_tc_abi_version(void) { return SLUICE_TC_ABI_VERSION; }

/**
 * Creates a transcoder for the stream that avcc (an AVCDecoderConfigurationRecord) describes.
 * fps: the source frame rate, or 0 to take it from the SPS timing (else 30).
 * bitrate: target bits per second. keyint_ms: IDR cadence in pts milliseconds (0 = first only).
 * max_height: scale pictures taller than this down (0 = never). complexity: openh264
 * ECOMPLEXITY_MODE (0 low, 1 medium, 2 high). threads: libavcodec decoder threads (1 = no
 * frame-threading delay). On failure returns NULL and writes why into err.
 */
SLUICE_EXPORT SluiceTranscoder *sluice_tc_create(const uint8_t *avcc, int avcc_len, double fps,
                                                 int bitrate, int keyint_ms, int max_height,
                                                 int complexity, int threads, char *err,
                                                 int err_cap) {
  av_log_set_level(AV_LOG_QUIET);
  if (bitrate < 10000 || bitrate > 100000000) {
    copy_error(err, err_cap, "bitrate must be within 10 kbit/s .. 100 Mbit/s");
    return NULL;
  }
  if (complexity < 0 || complexity > 2) complexity = 0;
  if (threads < 1 || threads > 16) threads = 1;
  SluiceTranscoder *t = calloc(1, sizeof *t);
  if (!t) {
    copy_error(err, err_cap, "out of memory");
    return NULL;
  }
  t->fps_hint = fps > 0 && fps <= 240 ? fps : 0;
  t->bitrate = bitrate;
  t->keyint_ms = keyint_ms > 0 ? keyint_ms : 0;
  t->max_height = max_height > 0 ? max_height : 0;
  t->complexity = complexity;
  t->src_fmt = AV_PIX_FMT_NONE;

  long n = avcc_param_sets_to_annexb(avcc, avcc_len, &t->param_sets);
  if (n < 0) {
    copy_error(err, err_cap, "expected an avcC record (version 1, SPS and PPS within its length)");
    free(t);
    return NULL;
  }
  t->param_sets_len = (size_t)n;

  const AVCodec *codec = avcodec_find_decoder(AV_CODEC_ID_H264);
  if (!codec) {
    copy_error(err, err_cap, "libavcodec has no H.264 decoder");
    free(t->param_sets);
    free(t);
    return NULL;
  }
  t->dec = avcodec_alloc_context3(codec);
  t->pkt = av_packet_alloc();
  t->frame = av_frame_alloc();
  if (!t->dec || !t->pkt || !t->frame) goto oom;
  t->dec->thread_count = threads;
  t->dec->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
  t->dec->pkt_timebase = (AVRational){1, 1000};
  int ret = avcodec_open2(t->dec, codec, NULL);
  if (ret < 0) {
    char msg[128];
    snprintf(msg, sizeof msg, "avcodec_open2(h264) failed: %s", av_err2str(ret));
    copy_error(err, err_cap, msg);
    avcodec_free_context(&t->dec);
    av_packet_free(&t->pkt);
    av_frame_free(&t->frame);
    free(t->param_sets);
    free(t);
    return NULL;
  }
  return t;
oom:
  copy_error(err, err_cap, "out of memory");
  avcodec_free_context(&t->dec);
  av_packet_free(&t->pkt);
  av_frame_free(&t->frame);
  free(t->param_sets);
  free(t);
  return NULL;
}

/** A new decoder configuration (the publisher sent another sequence header): 0, or -1 if malformed. */
SLUICE_EXPORT int sluice_tc_set_extradata(SluiceTranscoder *t, const uint8_t *avcc, int avcc_len) {
  uint8_t *sets = NULL;
  long n = avcc_param_sets_to_annexb(avcc, avcc_len, &sets);
  if (n < 0) {
    snprintf(t->error, sizeof t->error, "expected an avcC record, got %d malformed bytes", avcc_len);
    return -1;
  }
  free(t->param_sets);
  t->param_sets = sets;
  t->param_sets_len = (size_t)n;
  return 0;
}

/**
 * Decodes one access unit (NAL units behind length_size-byte big-endian lengths) and encodes
 * every picture the decoder releases. Returns the number of encoded pictures waiting for pop(),
 * or -1 when the access unit is malformed (nothing was decoded; see last_error).
 */
SLUICE_EXPORT int sluice_tc_push(SluiceTranscoder *t, const uint8_t *data, int len, int length_size,
                                 int64_t pts, int64_t dts) {
  if (length_size != 1 && length_size != 2 && length_size != 4) {
    snprintf(t->error, sizeof t->error, "expected a NAL length size of 1, 2 or 4, got %d",
             length_size);
    return -1;
  }
  if (len < 0 || len > MAX_ACCESS_UNIT_BYTES) {
    snprintf(t->error, sizeof t->error, "expected an access unit of at most %d bytes, got %d",
             MAX_ACCESS_UNIT_BYTES, len);
    return -1;
  }
  t->stats[STAT_PACKETS_IN]++;
  /* Worst case: 1-byte lengths become 4-byte start codes. */
  size_t need = t->param_sets_len + (size_t)len * 4 + AV_INPUT_BUFFER_PADDING_SIZE;
  if (!ensure_capacity(&t->annexb, &t->annexb_cap, need)) {
    snprintf(t->error, sizeof t->error, "out of memory for a %d-byte access unit", len);
    return -1;
  }
  size_t w = 0;
  if (t->param_sets_len) {
    memcpy(t->annexb, t->param_sets, t->param_sets_len);
    w = t->param_sets_len;
  }
  int pos = 0;
  while (pos < len) {
    if (len - pos < length_size) goto malformed;
    uint32_t n = 0;
    for (int i = 0; i < length_size; i++) n = (n << 8) | data[pos + i];
    pos += length_size;
    if (n > (uint32_t)(len - pos)) goto malformed;
    if (n > 0) {
      t->annexb[w] = 0;
      t->annexb[w + 1] = 0;
      t->annexb[w + 2] = 0;
      t->annexb[w + 3] = 1;
      memcpy(t->annexb + w + 4, data + pos, n);
      w += 4 + n;
    }
    pos += (int)n;
  }
  if (w == 0) return t->queue_len;
  memset(t->annexb + w, 0, AV_INPUT_BUFFER_PADDING_SIZE);
  t->param_sets_len = 0; /* sent once; the decoder keeps them */
  free(t->param_sets);
  t->param_sets = NULL;

  t->pkt->data = t->annexb;
  t->pkt->size = (int)w;
  t->pkt->pts = pts;
  t->pkt->dts = dts;
  /* While catching up, frames nothing refers to (non-reference B-frames) are not even
   * decoded: the pictures that are decoded stay exact. */
  bool skip = t->catching_up && pts < t->catch_up_until;
  t->dec->skip_frame = skip ? AVDISCARD_NONREF : AVDISCARD_DEFAULT;
  int ret = avcodec_send_packet(t->dec, t->pkt);
  if (ret < 0 && ret != AVERROR(EAGAIN)) t->stats[STAT_DECODE_ERRORS]++;
  drain_decoder(t);
  return t->queue_len;

malformed:
  snprintf(t->error, sizeof t->error, "NAL unit length runs past the %d-byte access unit at byte %d",
           len, pos);
  t->stats[STAT_DECODE_ERRORS]++;
  return -1;
}

/**
 * End of stream: encodes the pictures the decoder still holds for reordering, then readies the
 * decoder for a new stream (which must start at a keyframe). Returns the queue length.
 */
SLUICE_EXPORT int sluice_tc_flush(SluiceTranscoder *t) {
  if (avcodec_send_packet(t->dec, NULL) >= 0) drain_decoder(t);
  avcodec_flush_buffers(t->dec);
  return t->queue_len;
}

/**
 * Catch-up (a room's cached GOP fed in at start): pictures with pts before until_pts are
 * decoded only as far as later pictures need them (non-reference frames are skipped) and
 * never encoded; the first picture at or after until_pts is encoded as an IDR.
 */
SLUICE_EXPORT void sluice_tc_catch_up(SluiceTranscoder *t, int64_t until_pts) {
  t->catching_up = true;
  t->catch_up_until = until_pts;
}

/** Makes the next encoded picture an IDR (on top of the keyint_ms cadence). */
SLUICE_EXPORT void sluice_tc_force_idr(SluiceTranscoder *t) { t->force_idr = true; }

/** Bytes of the next encoded picture, or -1 when none waits. */
SLUICE_EXPORT int sluice_tc_next_size(SluiceTranscoder *t) {
  return t->queue_len ? t->queue[t->queue_head].size : -1;
}

/**
 * Takes the next encoded picture: copies its NAL units (4-byte lengths) into buf and writes
 * meta[0] = pts, meta[1] = 1 if IDR, meta[2] = width, meta[3] = height. Returns the byte
 * count, 0 when no picture waits, or -size when buf is too small (nothing is taken).
 */
SLUICE_EXPORT int sluice_tc_pop(SluiceTranscoder *t, uint8_t *buf, int cap, int64_t *meta) {
  if (!t->queue_len) return 0;
  OutputPicture *out = &t->queue[t->queue_head];
  if (out->size > cap) return -(out->size ? out->size : 1);
  memcpy(buf, out->data, (size_t)out->size);
  meta[0] = out->pts;
  meta[1] = out->keyframe;
  meta[2] = out->width;
  meta[3] = out->height;
  int size = out->size;
  free(out->data);
  out->data = NULL;
  t->queue_head = (t->queue_head + 1) % MAX_QUEUED_OUTPUTS;
  t->queue_len--;
  return size;
}

/** Copies min(cap, STAT_COUNT) counters into out; returns STAT_COUNT. */
SLUICE_EXPORT int sluice_tc_stats(SluiceTranscoder *t, int64_t *out, int cap) {
  for (int i = 0; i < cap && i < STAT_COUNT; i++) out[i] = t->stats[i];
  return STAT_COUNT;
}

/** Copies the last error message (NUL-terminated) into buf; returns its length. */
SLUICE_EXPORT int sluice_tc_last_error(SluiceTranscoder *t, char *buf, int cap) {
  copy_error(buf, cap, t->error);
  return (int)strlen(t->error);
}

/** Frees everything the handle owns, queued pictures included. */
SLUICE_EXPORT void sluice_tc_destroy(SluiceTranscoder *t) {
  if (!t) return;
  while (t->queue_len) {
    free(t->queue[t->queue_head].data);
    t->queue_head = (t->queue_head + 1) % MAX_QUEUED_OUTPUTS;
    t->queue_len--;
  }
  free_encoder(t);
  free_scaler(t);
  avcodec_free_context(&t->dec);
  av_packet_free(&t->pkt);
  av_frame_free(&t->frame);
  free(t->annexb);
  free(t->param_sets);
  free(t);
}
