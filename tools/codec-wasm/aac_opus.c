/*
 * aac_opus.c — the C side of Sluice's in-process audio path, compiled to
 * WebAssembly together with FFmpeg's native AAC decoder, libswresample and
 * libopus (see tools/build-codec-wasm.sh and lib/codec/wasm/README.md).
 *
 *   raw AAC access unit ──avcodec (aac)──▶ planar float at the input rate
 *     ──swresample──▶ interleaved float, 48 kHz, 1 or 2 channels ──▶ FIFO
 *     ──libopus──▶ one 20 ms Opus packet per 960 FIFO samples
 *
 * Every access unit in moves the output timeline forward by its duration:
 * a frame the decoder rejects (or that decodes to nothing) is replaced by
 * silence of one frame's length, so RTP timestamps derived from the packet
 * count never drift. The wrapper is single-threaded and keeps no globals
 * besides the handles the caller owns.
 *
 * Licence: this file is BSD-3-Clause like libopus; the built module as a
 * whole is LGPL-2.1-or-later because it contains FFmpeg.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavutil/channel_layout.h>
#include <libavutil/log.h>
#include <libavutil/mem.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>
#include <opus.h>

#include <emscripten/emscripten.h>

#define OUT_RATE 48000
#define OPUS_FRAME 960 /* 20 ms at 48 kHz */
/* Largest access unit accepted: 6144 bits per channel (ISO/IEC 14496-3 4.5.3.2) for 8 channels. */
#define MAX_AU_BYTES (6144 / 8 * 8)

/* Error codes aot_decode returns; the TS side mirrors them. */
#define AOT_ERR_CORRUPT -1  /* the decoder rejected the frame: silence inserted */
#define AOT_ERR_EMPTY -2    /* the frame decoded to no samples: silence inserted */
#define AOT_ERR_TOO_BIG -3  /* larger than any legal access unit: silence inserted */
#define AOT_ERR_RESAMPLE -4 /* the resampler could not be (re)configured: silence lost */
#define AOT_ERR_NOMEM -5

typedef struct Transcoder {
  AVCodecContext *dec;
  AVPacket *pkt;
  AVFrame *frame;

  SwrContext *swr;
  /* What swr is configured for: it is rebuilt when the decoder's output changes. */
  int swr_in_rate;
  int swr_in_channels;
  AVChannelLayout swr_in_layout;

  /* Duration of one access unit, at the rate the decoder outputs, for silence. */
  int frame_samples;
  int frame_rate;
  int frame_channels;
  float *silence; /* silence_cap zeros, used as every plane */
  int silence_cap;

  /* Interleaved float PCM at 48 kHz waiting for the encoder. */
  float *fifo;
  int fifo_len; /* samples per channel */
  int fifo_cap;
  int channels_out;

  OpusEncoder *enc;
  int in_rate_asc;    /* from the AudioSpecificConfig, before any frame decodes */
  int in_channels_asc;
} Transcoder;

/* --- AudioSpecificConfig: just enough to know the frame duration up front. --- */

typedef struct {
  const uint8_t *p;
  int len, pos; /* in bits */
} Bits;

static unsigned get_bits(Bits *b, int n) {
  unsigned v = 0;
  while (n-- > 0) {
    int bit = 0;
    if (b->pos < b->len) bit = (b->p[b->pos >> 3] >> (7 - (b->pos & 7))) & 1;
    b->pos++;
    v = (v << 1) | (unsigned)bit;
  }
  return v;
}

static const int asc_rates[13] = {96000, 88200, 64000, 48000, 44100, 32000, 24000,
                                  22050, 16000, 12000, 11025, 8000,  7350};

static int asc_rate(Bits *b) {
  unsigned idx = get_bits(b, 4);
  if (idx == 15) return (int)get_bits(b, 24);
  return idx < 13 ? asc_rates[idx] : 0;
}

static int asc_aot(Bits *b) {
  int aot = (int)get_bits(b, 5);
  return aot == 31 ? 32 + (int)get_bits(b, 6) : aot;
}

/* Fills rate (output rate, SBR doubled when explicit), samples per frame, channels. */
static void parse_asc(const uint8_t *asc, int len, int *rate, int *samples, int *channels) {
  Bits b = {asc, len * 8, 0};
  int aot = asc_aot(&b);
  int core_rate = asc_rate(&b);
  int chan = (int)get_bits(&b, 4);
  int out_rate = core_rate;
  int sbr = 0;
  if (aot == 5 || aot == 29) {
    int ext = asc_rate(&b);
    if (ext > core_rate) {
      sbr = 1;
      out_rate = ext;
    }
    aot = asc_aot(&b);
  }
  int frame = 1024;
  if (aot == 23 || aot == 39) frame = 512; /* LD / ELD */
  if (get_bits(&b, 1)) frame = frame == 1024 ? 960 : 480;
  *rate = out_rate;
  *samples = sbr ? frame * 2 : frame;
  *channels = chan == 7 ? 8 : (chan >= 1 && chan <= 6 ? chan : 2);
}

/* --- FIFO --- */

static int fifo_reserve(Transcoder *t, int more) {
  int need = t->fifo_len + more;
  if (need <= t->fifo_cap) return 0;
  int cap = t->fifo_cap ? t->fifo_cap : 4096;
  while (cap < need) cap *= 2;
  float *p = realloc(t->fifo, (size_t)cap * t->channels_out * sizeof(float));
  if (!p) return AOT_ERR_NOMEM;
  t->fifo = p;
  t->fifo_cap = cap;
  return 0;
}

static void fifo_consume(Transcoder *t, int n) {
  if (n > t->fifo_len) n = t->fifo_len;
  t->fifo_len -= n;
  if (t->fifo_len > 0)
    memmove(t->fifo, t->fifo + (size_t)n * t->channels_out,
            (size_t)t->fifo_len * t->channels_out * sizeof(float));
}

/* --- resampler --- */

static int swr_setup(Transcoder *t, int rate, const AVChannelLayout *layout) {
  AVChannelLayout in_layout;
  AVChannelLayout out_layout;
  int ret;
  if (layout->order == AV_CHANNEL_ORDER_UNSPEC || !av_channel_layout_check(layout))
    av_channel_layout_default(&in_layout, layout->nb_channels > 0 ? layout->nb_channels : 2);
  else if ((ret = av_channel_layout_copy(&in_layout, layout)) < 0)
    return AOT_ERR_NOMEM;
  av_channel_layout_default(&out_layout, t->channels_out);

  if (t->swr && rate == t->swr_in_rate && !av_channel_layout_compare(&in_layout, &t->swr_in_layout)) {
    av_channel_layout_uninit(&in_layout);
    return 0;
  }
  /* The old resampler's tail (its filter delay) would be a few samples of
   * the previous configuration; drain it into the FIFO so nothing is lost. */
  if (t->swr) {
    int tail = swr_get_out_samples(t->swr, 0);
    if (tail > 0 && fifo_reserve(t, tail) == 0) {
      uint8_t *out = (uint8_t *)(t->fifo + (size_t)t->fifo_len * t->channels_out);
      int got = swr_convert(t->swr, &out, tail, NULL, 0);
      if (got > 0) t->fifo_len += got;
    }
    swr_free(&t->swr);
  }
  ret = swr_alloc_set_opts2(&t->swr, &out_layout, AV_SAMPLE_FMT_FLT, OUT_RATE, &in_layout,
                            AV_SAMPLE_FMT_FLTP, rate, 0, NULL);
  if (ret >= 0) ret = swr_init(t->swr);
  if (ret < 0) {
    swr_free(&t->swr);
    av_channel_layout_uninit(&in_layout);
    return AOT_ERR_RESAMPLE;
  }
  av_channel_layout_uninit(&t->swr_in_layout);
  t->swr_in_layout = in_layout;
  t->swr_in_rate = rate;
  t->swr_in_channels = in_layout.nb_channels;
  return 0;
}

/* Resamples planar float input (swr's configured layout and rate) into the FIFO. */
static int resample_into_fifo(Transcoder *t, const uint8_t **planes, int nb) {
  int room = swr_get_out_samples(t->swr, nb);
  if (room < 0) return AOT_ERR_RESAMPLE;
  if (fifo_reserve(t, room) < 0) return AOT_ERR_NOMEM;
  uint8_t *out = (uint8_t *)(t->fifo + (size_t)t->fifo_len * t->channels_out);
  int got = swr_convert(t->swr, &out, room, planes, nb);
  if (got < 0) return AOT_ERR_RESAMPLE;
  t->fifo_len += got;
  return 0;
}

/* Silence of one access unit, fed through the resampler so its phase carries on. */
static int insert_silence(Transcoder *t) {
  if (!t->swr) {
    AVChannelLayout layout;
    av_channel_layout_default(&layout, t->frame_channels);
    if (swr_setup(t, t->frame_rate, &layout) < 0) return AOT_ERR_RESAMPLE;
  }
  /* Normally the resampler runs at frame_rate already; if not, keep it and scale the duration. */
  int nb = (int)av_rescale(t->frame_samples, t->swr_in_rate, t->frame_rate);
  int channels = t->swr_in_channels;
  if (nb <= 0 || channels <= 0 || channels > 64) return AOT_ERR_RESAMPLE;
  if (nb > t->silence_cap) {
    free(t->silence);
    t->silence = calloc((size_t)nb, sizeof(float));
    t->silence_cap = t->silence ? nb : 0;
    if (!t->silence) return AOT_ERR_NOMEM;
  }
  const uint8_t *planes[64];
  for (int c = 0; c < channels; c++) planes[c] = (const uint8_t *)t->silence; /* one zero plane */
  return resample_into_fifo(t, planes, nb);
}

/* --- exported API --- */

EMSCRIPTEN_KEEPALIVE
void aot_close(Transcoder *t) {
  if (!t) return;
  avcodec_free_context(&t->dec);
  av_packet_free(&t->pkt);
  av_frame_free(&t->frame);
  swr_free(&t->swr);
  av_channel_layout_uninit(&t->swr_in_layout);
  if (t->enc) opus_encoder_destroy(t->enc);
  free(t->silence);
  free(t->fifo);
  free(t);
}

/*
 * Opens a transcoder for the stream the AudioSpecificConfig describes.
 * fec: 0 off; 1 in-band FEC (LBRR) on; 2 on but never forced for music.
 * Returns 0 when the config is unusable or a component fails to open.
 */
EMSCRIPTEN_KEEPALIVE
Transcoder *aot_open(const uint8_t *asc, int asc_len, int opus_bitrate, int complexity, int fec,
                     int channels_out) {
  static int quiet = 0;
  if (!quiet) {
    av_log_set_level(AV_LOG_QUIET); /* errors are returned, not printed */
    quiet = 1;
  }
  if (!asc || asc_len < 2 || asc_len > 64) return NULL;
  if (channels_out != 1 && channels_out != 2) return NULL;

  Transcoder *t = calloc(1, sizeof(*t));
  if (!t) return NULL;
  t->channels_out = channels_out;
  parse_asc(asc, asc_len, &t->in_rate_asc, &t->frame_samples, &t->in_channels_asc);
  if (t->in_rate_asc <= 0 || t->in_rate_asc > 96000) goto fail;

  const AVCodec *codec = avcodec_find_decoder(AV_CODEC_ID_AAC);
  if (!codec) goto fail;
  t->dec = avcodec_alloc_context3(codec);
  t->pkt = av_packet_alloc();
  t->frame = av_frame_alloc();
  if (!t->dec || !t->pkt || !t->frame) goto fail;
  t->dec->extradata = av_mallocz(asc_len + AV_INPUT_BUFFER_PADDING_SIZE);
  if (!t->dec->extradata) goto fail;
  memcpy(t->dec->extradata, asc, asc_len);
  t->dec->extradata_size = asc_len;
  t->dec->request_sample_fmt = AV_SAMPLE_FMT_FLTP;
  if (avcodec_open2(t->dec, codec, NULL) < 0) goto fail;

  t->frame_rate = t->dec->sample_rate > 0 ? t->dec->sample_rate : t->in_rate_asc;
  if (t->frame_rate != t->in_rate_asc)
    t->frame_samples = (int)av_rescale(t->frame_samples, t->frame_rate, t->in_rate_asc);
  t->frame_channels =
      t->dec->ch_layout.nb_channels > 0 ? t->dec->ch_layout.nb_channels : t->in_channels_asc;

  int err = 0;
  t->enc = opus_encoder_create(OUT_RATE, channels_out, OPUS_APPLICATION_AUDIO, &err);
  if (!t->enc || err != OPUS_OK) goto fail;
  if (opus_encoder_ctl(t->enc, OPUS_SET_BITRATE(opus_bitrate)) != OPUS_OK) goto fail;
  if (opus_encoder_ctl(t->enc, OPUS_SET_COMPLEXITY(complexity)) != OPUS_OK) goto fail;
  if (opus_encoder_ctl(t->enc, OPUS_SET_INBAND_FEC(fec)) != OPUS_OK) goto fail;
  return t;

fail:
  aot_close(t);
  return NULL;
}

/* Expected packet loss in percent (0..100): what in-band FEC protects against. */
EMSCRIPTEN_KEEPALIVE
int aot_set_packet_loss(Transcoder *t, int percent) {
  return opus_encoder_ctl(t->enc, OPUS_SET_PACKET_LOSS_PERC(percent)) == OPUS_OK ? 0 : -1;
}

EMSCRIPTEN_KEEPALIVE
int aot_set_bitrate(Transcoder *t, int bitrate) {
  return opus_encoder_ctl(t->enc, OPUS_SET_BITRATE(bitrate)) == OPUS_OK ? 0 : -1;
}

/* Strips an ADTS header some publishers leave on FLV audio, so the decoder
 * never reconfigures itself from a header instead of the ASC. */
static int adts_header_length(const uint8_t *p, int len) {
  if (len < 7 || p[0] != 0xff || (p[1] & 0xf6) != 0xf0) return 0;
  int hlen = (p[1] & 1) ? 7 : 9; /* protection_absent */
  int flen = ((p[3] & 3) << 11) | (p[4] << 3) | (p[5] >> 5);
  if (flen < hlen || flen > len) return 0;
  return hlen;
}

/*
 * Decodes one raw access unit and queues its PCM, resampled to 48 kHz.
 * Returns the samples per channel now waiting in the FIFO, or a negative
 * AOT_ERR_* code: then a frame of silence stands in for the access unit.
 */
EMSCRIPTEN_KEEPALIVE
int aot_decode(Transcoder *t, const uint8_t *aac, int len) {
  int ret;
  if (len > MAX_AU_BYTES + 9 || len <= 0) {
    ret = insert_silence(t);
    return ret < 0 ? ret : len <= 0 ? AOT_ERR_EMPTY : AOT_ERR_TOO_BIG;
  }
  int skip = adts_header_length(aac, len);
  aac += skip;
  len -= skip;
  /* A raw access unit never starts with 12 one bits (that would be an empty
   * END element); FFmpeg would read them as an ADTS header and could switch
   * rate or layout on garbage, so such a frame counts as corrupt. */
  if (len == 0 || (len >= 2 && aac[0] == 0xff && (aac[1] & 0xf0) == 0xf0)) {
    ret = insert_silence(t);
    return ret < 0 ? ret : AOT_ERR_CORRUPT;
  }

  /* The decoder reads ahead up to AV_INPUT_BUFFER_PADDING_SIZE zeroed bytes. */
  if (av_new_packet(t->pkt, len) < 0) return AOT_ERR_NOMEM;
  memcpy(t->pkt->data, aac, len);
  int got = 0;
  int status = 0;
  ret = avcodec_send_packet(t->dec, t->pkt);
  av_packet_unref(t->pkt);
  if (ret < 0) {
    status = AOT_ERR_CORRUPT;
  } else {
    while ((ret = avcodec_receive_frame(t->dec, t->frame)) >= 0) {
      AVFrame *f = t->frame;
      if (f->nb_samples > 0 && f->sample_rate > 0 && f->format == AV_SAMPLE_FMT_FLTP &&
          f->ch_layout.nb_channels > 0 && f->ch_layout.nb_channels <= 64) {
        if (swr_setup(t, f->sample_rate, &f->ch_layout) < 0) {
          status = AOT_ERR_RESAMPLE;
        } else if ((ret = resample_into_fifo(t, (const uint8_t **)f->extended_data,
                                             f->nb_samples)) < 0) {
          status = ret;
        } else {
          got++;
          t->frame_samples = f->nb_samples;
          t->frame_rate = f->sample_rate;
          t->frame_channels = f->ch_layout.nb_channels;
        }
      }
      av_frame_unref(f);
    }
    if (ret != AVERROR(EAGAIN) && ret != AVERROR_EOF && status == 0) status = AOT_ERR_CORRUPT;
    if (!got && status == 0) status = AOT_ERR_EMPTY;
  }
  if (status < 0 && !got) {
    int s = insert_silence(t);
    if (s < 0) return s;
  }
  return status < 0 ? status : t->fifo_len;
}

/* Encodes one 20 ms packet when 960 samples wait; returns its length, or 0 when fewer wait. */
EMSCRIPTEN_KEEPALIVE
int aot_encode(Transcoder *t, uint8_t *out, int cap) {
  if (t->fifo_len < OPUS_FRAME) return 0;
  /* Garbage that still decodes can be loud; keep NaN and huge values out of the encoder. */
  float *x = t->fifo;
  for (int i = 0, n = OPUS_FRAME * t->channels_out; i < n; i++) {
    if (!(x[i] >= -4.0f && x[i] <= 4.0f)) x[i] = x[i] > 4.0f ? 4.0f : x[i] < -4.0f ? -4.0f : 0.0f;
  }
  if (cap < 1) return OPUS_BUFFER_TOO_SMALL;
  int n = opus_encode_float(t->enc, t->fifo, OPUS_FRAME, out, cap);
  fifo_consume(t, OPUS_FRAME);
  if (n < 0) {
    /* Cannot happen with valid settings; if it does, keep the timeline with a
     * TOC-only packet (CELT fullband 20 ms, no frame data): receivers conceal it. */
    out[0] = (uint8_t)((31 << 3) | (t->channels_out == 2 ? 4 : 0));
    n = 1;
  }
  return n;
}

/* Copies up to max samples per channel of queued PCM (interleaved float) out,
 * bypassing the encoder: for tests and diagnostics. */
EMSCRIPTEN_KEEPALIVE
int aot_read_pcm(Transcoder *t, float *out, int max) {
  int n = t->fifo_len < max ? t->fifo_len : max;
  memcpy(out, t->fifo, (size_t)n * t->channels_out * sizeof(float));
  fifo_consume(t, n);
  return n;
}

EMSCRIPTEN_KEEPALIVE
int aot_pending(Transcoder *t) { return t->fifo_len; }

/* Rate and channels the decoder produces: from the ASC until a frame decodes. */
EMSCRIPTEN_KEEPALIVE
int aot_input_sample_rate(Transcoder *t) { return t->frame_rate; }

EMSCRIPTEN_KEEPALIVE
int aot_input_channels(Transcoder *t) { return t->frame_channels; }

/* Samples per access unit at aot_input_sample_rate (2048 with SBR). */
EMSCRIPTEN_KEEPALIVE
int aot_frame_samples(Transcoder *t) { return t->frame_samples; }

/* --- Opus decoder, for tests and for checking what leaves the server. --- */

EMSCRIPTEN_KEEPALIVE
OpusDecoder *aod_open(int channels) {
  int err = 0;
  OpusDecoder *d = opus_decoder_create(OUT_RATE, channels, &err);
  return err == OPUS_OK ? d : NULL;
}

/* Decodes a packet (or conceals a lost one when len is 0) into interleaved float. */
EMSCRIPTEN_KEEPALIVE
int aod_decode(OpusDecoder *d, const uint8_t *pkt, int len, float *pcm, int max_samples) {
  return opus_decode_float(d, len > 0 ? pkt : NULL, len, pcm, max_samples, 0);
}

EMSCRIPTEN_KEEPALIVE
void aod_close(OpusDecoder *d) {
  if (d) opus_decoder_destroy(d);
}
