/* vma_forge.c: test helper that builds a VMA archive from raw images laid out
 * like Proxmox's writer (sizes rounded to 512, 58 clusters per extent, out of order);
 * --vmstate FILE adds Proxmox's RAM state (a device named "vmstate", which
 * vmaback's writer refuses: written under a stand-in name, renamed in the
 * header afterwards). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/byteorder.h"
#include "vma/vma.h"

#define SHUFFLE_WINDOW 128u

struct image {
	char *name;
	const char *path;
	int fd;
	uint64_t file_size;
	uint64_t size;      /* declared: file size rounded up to 512 */
	int dev_id;
};

struct job {
	unsigned img;
	uint32_t cluster;
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "vma_forge: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static int out_write(void *opaque, const void *buf, size_t len)
{
	int fd = *(int *)opaque;
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static unsigned long parse_num(const char *s, unsigned long max, const char *what)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > max)
		die("bad %s: %s", what, s);
	return v;
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Sequential per image, or alternating between images; then shuffled
 * inside windows, as Proxmox's parallel copy jobs reorder clusters. */
static struct job *make_jobs(struct image *img, unsigned nimg, int interleave,
			     int shuffle, uint64_t seed, size_t *njobs)
{
	size_t total = 0, k = 0, i;
	struct job *jobs;
	uint64_t c;
	unsigned d;

	for (d = 0; d < nimg; d++)
		total += vma_clusters_of(img[d].size);
	jobs = calloc(total ? total : 1, sizeof(*jobs));
	if (!jobs)
		die("out of memory");
	for (c = 0; k < total; c++)
		for (d = 0; d < nimg; d++) {
			uint64_t n = vma_clusters_of(img[d].size);

			if (interleave && c < n)
				jobs[k++] = (struct job){ d, (uint32_t)c };
			else if (!interleave && c == 0)
				for (uint64_t j = 0; j < n; j++)
					jobs[k++] = (struct job){ d, (uint32_t)j };
		}
	seed = seed * 2654435761u + 88172645463325252ull;
	for (i = 0; shuffle && i < total; i += SHUFFLE_WINDOW) {
		size_t w = total - i < SHUFFLE_WINDOW ? total - i : SHUFFLE_WINDOW, j;

		for (j = w; j > 1; j--) {
			size_t r = xorshift(&seed) % j;
			struct job t = jobs[i + j - 1];

			jobs[i + j - 1] = jobs[i + r];
			jobs[i + r] = t;
		}
	}
	*njobs = total;
	return jobs;
}

static void add_config(struct vma_writer *w, const char *path)
{
	static char buf[VMA_MAX_BLOB_LEN + 1];
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	FILE *f = fopen(path, "rb");
	size_t n;

	if (!f)
		die("%s: %s", path, strerror(errno));
	n = fread(buf, 1, sizeof(buf), f);
	if (ferror(f))
		die("%s: %s", path, strerror(errno));
	fclose(f);
	if (n > VMA_MAX_BLOB_LEN)
		die("%s: larger than %u bytes", path, VMA_MAX_BLOB_LEN);
	if (vma_writer_add_config(w, base, buf, n) < 0)
		die("%s: %s", path, vma_writer_error(w));
}

static void open_image(struct image *im, char *arg)
{
	char *eq = strchr(arg, '=');
	struct stat st;

	if (!eq || eq == arg || !eq[1])
		die("expected NAME=IMAGE, got %s", arg);
	*eq = 0;
	im->name = arg;
	im->path = eq + 1;
	im->fd = open(im->path, O_RDONLY);
	if (im->fd < 0 || fstat(im->fd, &st) < 0)
		die("%s: %s", im->path, strerror(errno));
	if (st.st_size <= 0)
		die("%s: empty image (Proxmox refuses it too)", im->path);
	im->file_size = (uint64_t)st.st_size;
	im->size = (im->file_size + 511) / 512 * 512;
}

static void write_clusters(struct vma_writer *w, struct image *img, const struct job *jobs,
			   size_t njobs)
{
	static uint8_t buf[VMA_CLUSTER_SIZE];
	size_t i;

	for (i = 0; i < njobs; i++) {
		struct image *im = &img[jobs[i].img];
		uint64_t off = (uint64_t)jobs[i].cluster * VMA_CLUSTER_SIZE;
		size_t want = im->file_size - off < VMA_CLUSTER_SIZE ?
			(size_t)(im->file_size - off) : VMA_CLUSTER_SIZE;
		size_t got = 0;

		if (off >= im->file_size)
			want = 0; /* the 512-byte round-up past the file's end */
		while (got < want) {
			ssize_t n = pread(im->fd, buf + got, want - got, (off_t)(off + got));

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				die("%s: read failed: %s", im->path, n ? strerror(errno) : "EOF");
			got += (size_t)n;
		}
		if (vma_writer_add_cluster(w, (unsigned)im->dev_id, jobs[i].cluster, buf, want) < 0)
			die("%s: %s", im->name, vma_writer_error(w));
	}
}

#define STAND_IN "vmstat~"

/* Renames the device STAND_IN to "vmstate" in the header of the archive at
 * path and recomputes the header's MD5 (its field zeroed). */
static void rename_vmstate(const char *path)
{
	static const uint8_t blob[] = { 8, 0, 'v', 'm', 's', 't', 'a', 't', '~', 0 };
	uint8_t fixed[60], *h, md5[16];
	uint32_t boff, bsize, hsize;
	unsigned int len = 0;
	EVP_MD_CTX *ctx;
	int fd = open(path, O_RDWR);
	size_t i;

	if (fd < 0 || pread(fd, fixed, sizeof(fixed), 0) != (ssize_t)sizeof(fixed))
		die("%s: cannot read the header", path);
	boff = get_be32(fixed + 48);
	bsize = get_be32(fixed + 52);
	hsize = get_be32(fixed + 56);
	if (hsize < 12288 || hsize > 4u << 20 || boff + bsize > hsize || !(h = malloc(hsize)))
		die("%s: bad header", path);
	if (pread(fd, h, hsize, 0) != (ssize_t)hsize)
		die("%s: cannot read the header", path);
	for (i = boff; i + sizeof(blob) <= boff + bsize; i++)
		if (memcmp(h + i, blob, sizeof(blob)) == 0)
			break;
	if (i + sizeof(blob) > boff + bsize)
		die("%s: no device %s in the header", path, STAND_IN);
	h[i + 8] = 'e';
	memset(h + 32, 0, 16);
	ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestInit_ex(ctx, EVP_md5(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, h, hsize) != 1 || EVP_DigestFinal_ex(ctx, md5, &len) != 1)
		die("md5 failed");
	EVP_MD_CTX_free(ctx);
	memcpy(h + 32, md5, 16);
	if (pwrite(fd, h, hsize, 0) != (ssize_t)hsize || close(fd) < 0)
		die("%s: %s", path, strerror(errno));
	free(h);
}

static void usage(void)
{
	fprintf(stderr, "usage: vma_forge [-o OUT] [--extent-clusters N] [--shuffle SEED] "
			"[--interleave] [--config FILE]... [--vmstate FILE -o OUT] NAME=IMAGE...\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "extent-clusters", required_argument, NULL, 'e' },
		{ "shuffle", required_argument, NULL, 's' },
		{ "interleave", no_argument, NULL, 'i' },
		{ "config", required_argument, NULL, 'c' },
		{ "vmstate", required_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	char *vmstate = NULL;
	const char *out = "-", *configs[VMA_MAX_CONFIGS + 1];
	unsigned long per_extent = 58, seed = 0;
	int opt, fd = 1, interleave = 0, shuffle = 0;
	unsigned nconf = 0, nimg, d;
	struct vma_writer *w;
	struct image *img;
	struct job *jobs;
	size_t njobs;

	while ((opt = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
		switch (opt) {
		case 'o': out = optarg; break;
		case 'e': per_extent = parse_num(optarg, VMA_BLOCKINFO_PER_EXTENT, "extent clusters"); break;
		case 's': shuffle = 1; seed = parse_num(optarg, ~0ul, "seed"); break;
		case 'i': interleave = 1; break;
		case 'c':
			if (nconf > VMA_MAX_CONFIGS)
				die("too many configs");
			configs[nconf++] = optarg;
			break;
		case 'v':
			if (asprintf(&vmstate, STAND_IN "=%s", optarg) < 0)
				die("out of memory");
			break;
		default: usage();
		}
	}
	if (vmstate && strcmp(out, "-") == 0)
		die("--vmstate needs -o OUT (the header is rewritten)");
	nimg = (unsigned)(argc - optind) + (vmstate != NULL);
	img = calloc(nimg ? nimg : 1, sizeof(*img));
	w = vma_writer_new(out_write, &fd);
	if (!img || !w)
		die("out of memory");
	if (vma_writer_set_extent_clusters(w, (unsigned)per_extent) < 0)
		die("%s", vma_writer_error(w));
	for (d = 0; d < nconf; d++)
		add_config(w, configs[d]);
	for (d = 0; d < nimg; d++) {
		open_image(&img[d], vmstate && d == nimg - 1 ? vmstate : argv[optind + (int)d]);
		img[d].dev_id = vma_writer_add_device(w, img[d].name, img[d].size);
		if (img[d].dev_id < 0)
			die("%s: %s", img[d].name, vma_writer_error(w));
	}
	if (strcmp(out, "-") != 0) {
		fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			die("%s: %s", out, strerror(errno));
	}
	jobs = make_jobs(img, nimg, interleave, shuffle, seed, &njobs);
	if (vma_writer_start(w) < 0)
		die("%s: %s", out, vma_writer_error(w));
	write_clusters(w, img, jobs, njobs);
	if (vma_writer_finish(w) < 0)
		die("%s: %s", out, vma_writer_error(w));
	if (fd != 1 && close(fd) < 0)
		die("%s: %s", out, strerror(errno));
	if (vmstate)
		rename_vmstate(out);
	free(vmstate);
	for (d = 0; d < nimg; d++)
		close(img[d].fd);
	vma_writer_free(w);
	free(jobs);
	free(img);
	return 0;
}
