#include <stddef.h>
/* Registers provider_path as plugin EP reg_name, finds the gpu_index-th GPU
 * device of ep_name (or of an EP whose name contains match, any case) and appends it to session_options. Returns NULL or a
 * malloc'd error message. */
char *her2_ep_append(const char *lib, const char *reg_name, const char *provider_path,
		     const char *ep_name, const char *match, int gpu_index, void *session_options,
		     const char *const *keys, const char *const *values, size_t nopts);
