// Plugin execution providers (ONNX Runtime >= 1.22): a provider library that
// exports CreateEpFactories is registered with the environment, its devices
// are listed, and one is appended to the session options. onnxruntime_go
// (v1.27) wraps only the registration, so the rest goes through the OrtApi
// function table here. The table is append-only across ORT releases; the
// indices below are those of ORT_API_VERSION 24 (onnxruntime_c_api.h).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "ep_plugin.h"

enum {
	IDX_GetErrorMessage = 2,
	IDX_CreateEnv = 3,
	IDX_ReleaseEnv = 92,
	IDX_ReleaseStatus = 93,
	IDX_RegisterExecutionProviderLibrary = 301,
	IDX_GetEpDevices = 303,
	IDX_SessionOptionsAppendExecutionProvider_V2 = 304,
	IDX_HardwareDevice_Type = 307,
	IDX_EpDevice_EpName = 312,
	IDX_EpDevice_Device = 316,
	API_VERSION = 24,
	HW_GPU = 1,
};

typedef void *(*get_api_fn)(uint32_t);
typedef struct {
	get_api_fn GetApi;
	const char *(*GetVersionString)(void);
} api_base;

static void *const *api(const char *lib)
{
	void *h = dlopen(lib, RTLD_LAZY | RTLD_NOLOAD);
	if (!h)
		return NULL;
	const api_base *(*base)(void) = (const api_base *(*)(void)) dlsym(h, "OrtGetApiBase");
	if (!base)
		return NULL;
	return (void *const *) base()->GetApi(API_VERSION);
}

static char *status_msg(void *const *a, void *st)
{
	const char *(*msg)(void *) = (const char *(*)(void *)) a[IDX_GetErrorMessage];
	void (*rel)(void *) = (void (*)(void *)) a[IDX_ReleaseStatus];
	char *s = strdup(msg(st));
	rel(st);
	return s;
}

char *her2_ep_append(const char *lib, const char *reg_name, const char *provider_path,
		     const char *ep_name, const char *match, int gpu_index, void *session_options,
		     const char *const *keys, const char *const *values, size_t nopts)
{
	void *const *a = api(lib);
	if (!a)
		return strdup("cannot reach the ONNX Runtime API of the loaded library");
	void *(*create_env)(int, const char *, void **) = (void *(*)(int, const char *, void **)) a[IDX_CreateEnv];
	void (*release_env)(void *) = (void (*)(void *)) a[IDX_ReleaseEnv];
	void *env = NULL;
	void *st = create_env(3 /* error */, "her2wsi", &env); /* the process's one env, refcounted */
	if (st)
		return status_msg(a, st);
	char *err = NULL;
	void *(*reg)(void *, const char *, const char *) = (void *(*)(void *, const char *, const char *)) a[IDX_RegisterExecutionProviderLibrary];
	st = reg(env, reg_name, provider_path);
	if (st) {
		char *m = status_msg(a, st);
		/* Registering twice in one process is fine: keep going. */
		if (!strstr(m, "already registered")) {
			err = m;
			goto out;
		}
		free(m);
	}
	const void *const *devs = NULL;
	size_t n = 0;
	void *(*get_devs)(void *, const void *const **, size_t *) = (void *(*)(void *, const void *const **, size_t *)) a[IDX_GetEpDevices];
	st = get_devs(env, &devs, &n);
	if (st) {
		err = status_msg(a, st);
		goto out;
	}
	const char *(*ep_name_of)(const void *) = (const char *(*)(const void *)) a[IDX_EpDevice_EpName];
	const void *(*hw_of)(const void *) = (const void *(*)(const void *)) a[IDX_EpDevice_Device];
	int (*hw_type)(const void *) = (int (*)(const void *)) a[IDX_HardwareDevice_Type];
	const void *pick = NULL;
	int seen = 0;
	size_t listed = 0;
	char names[512] = "";
	for (size_t i = 0; i < n; i++) {
		const char *name = ep_name_of(devs[i]);
		if (listed < 8 && strlen(names) + strlen(name) + 3 < sizeof names) {
			if (listed++)
				strcat(names, ", ");
			strcat(names, name);
		}
		if ((strcmp(name, ep_name) == 0 || strcasestr(name, match)) && hw_type(hw_of(devs[i])) == HW_GPU && seen++ == gpu_index)
			pick = devs[i];
	}
	if (!pick) {
		size_t len = strlen(names) + 200;
		err = malloc(len);
		snprintf(err, len, "no GPU device %d for %s (the runtime lists: %s)", gpu_index, ep_name, n ? names : "no devices");
		goto out;
	}
	void *(*append)(void *, void *, const void *const *, size_t, const char *const *, const char *const *, size_t) =
		(void *(*)(void *, void *, const void *const *, size_t, const char *const *, const char *const *, size_t)) a[IDX_SessionOptionsAppendExecutionProvider_V2];
	st = append(session_options, env, &pick, 1, keys, values, nopts);
	if (st)
		err = status_msg(a, st);
out:
	release_env(env);
	return err;
}
