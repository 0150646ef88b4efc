/* Image lists of datasets in the MVTec AD layout (train/good, test/<defect>). */
#ifndef DFRCL_IO_DATASET_H
#define DFRCL_IO_DATASET_H

typedef struct dfr_file_list {
    char **paths; /* sorted by name */
    int count;
} dfr_file_list;

/* The image files (.png, .jpg, .jpeg, any case) directly in `dir`, sorted by name. A missing or
 * unreadable folder is an error naming it; an empty one gives count 0. */
int dfr_list_images(const char *dir, dfr_file_list *out);
void dfr_file_list_free(dfr_file_list *l);

/* DIR/train/good's images, with errors that say what an MVTec-style folder must hold. */
int dfr_list_train_images(const char *root, dfr_file_list *out);
#endif
