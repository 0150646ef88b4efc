/* Shared helpers, prepended to every stage file. OpenCL C 1.2. */

/* Bilinear source coordinate with align_corners=True: out index o of n_out maps to
 * o * (n_in - 1) / (n_out - 1), split into the lower index, the upper index (clamped) and the
 * weight of the upper one, as PyTorch computes it (scale in float). */
inline void dfr_align_corners(int o, int n_in, int n_out, int *i0, int *i1, float *l1)
{
    float scale = n_out > 1 ? (float)(n_in - 1) / (float)(n_out - 1) : 0.0f;
    float src = scale * (float)o;
    int i = (int)src;
    if (i > n_in - 1) i = n_in - 1;
    *i0 = i;
    *i1 = i < n_in - 1 ? i + 1 : i;
    *l1 = src - (float)i;
}
