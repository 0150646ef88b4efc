/*
 * NumPy .npy files of float32 arrays (internal): the score maps and features that `dfrcl infer`
 * and `eval` save, readable with numpy.load().
 *
 * The writer produces exactly the bytes numpy's np.save() (1.24) gives for a C-ordered '<f4'
 * array: format version 1.0, header dict "{'descr': '<f4', 'fortran_order': False, 'shape': (..), }"
 * with numpy's extra room after the dict, padded with spaces so that magic + header + newline is
 * a multiple of 64 bytes; data little-endian. The file is written atomically.
 *
 * The reader accepts what numpy writes for such arrays (versions 1.0, 2.0 and 3.0, keys in any
 * order, either quote style) and refuses everything else with DFRCL_ERR_FORMAT and a message
 * naming the file and the problem: bad magic or version, a header that is not a plain dict of
 * exactly 'descr', 'fortran_order' and 'shape', a dtype other than '<f4', Fortran order, more
 * than DFR_NPY_MAX_DIMS dimensions, or a data size that disagrees with the shape (truncated or
 * trailing bytes). A missing or unreadable file is DFRCL_ERR_IO.
 */
#ifndef DFRCL_IO_NPY_H
#define DFRCL_IO_NPY_H

#include <stdint.h>

#define DFR_NPY_MAX_DIMS 8

/* Writes a float32 array of `ndim` (0..DFR_NPY_MAX_DIMS) dimensions shape[0..ndim-1] (each >= 0),
 * C order, from `data` (may be NULL when the array has no elements). */
int dfr_npy_write_f32(const char *path, int ndim, const int64_t *shape, const float *data);

/* Reads a float32 .npy file. On success *ndim and shape[0..*ndim-1] are set and *data is a
 * malloc'd array of the product of the shape (never NULL, even for zero elements; caller frees).
 * On failure *ndim is 0 and *data NULL. */
int dfr_npy_read_f32(const char *path, int *ndim, int64_t shape[DFR_NPY_MAX_DIMS], float **data);

#endif
