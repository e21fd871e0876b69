/* SPDX-License-Identifier: Apache-2.0 */
/* libdaytona configuration: precedence (explicit > DAYTONA_* environment > config file
 * profile), the profile file's load/save cycle (0600, atomic, unknown keys kept) and its
 * errors. No network. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daytona/daytona.h"
#include "testlib.h"

static char *dir;

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "we");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int
setup(void **state)
{
    char *cfgdir;

    dir = dt_test_mkdtemp("daytona-config");
    setenv("XDG_CONFIG_HOME", dir, 1);
    unsetenv("DAYTONA_API_KEY");
    unsetenv("DAYTONA_API_URL");
    unsetenv("DAYTONA_TARGET");
    if (asprintf(&cfgdir, "%s/daytona", dir) < 0)
        abort();
    free(cfgdir);
    return 0;
}

static int
teardown(void **state)
{
    dt_test_rm_rf(dir);
    free(dir);
    return 0;
}

static void
test_precedence(void **state)
{
    char path[4096];
    daytona_client *c = NULL;
    daytona_error *err = NULL;
    daytona_config_file *cf = NULL;
    struct daytona_config cfg = { 0 };

    /* Nothing anywhere: no key. */
    assert_int_equal(daytona_client_new(NULL, &c, &err), -ENOKEY);
    assert_non_null(strstr(err->message, "DAYTONA_API_KEY"));
    daytona_error_free(err);
    err = NULL;

    /* The file through the default path ($XDG_CONFIG_HOME/daytona/config.json). */
    assert_int_equal(daytona_config_file_load(NULL, &cf, &err), 0);
    snprintf(path, sizeof(path), "%s/daytona/config.json", dir);
    assert_string_equal(daytona_config_file_path(cf), path);
    assert_int_equal(daytona_config_file_n_profiles(cf), 0);
    assert_int_equal(daytona_config_file_set_profile(cf, "default", "http://file/api/", "filekey",
                                                     "filetarget", &err), 0);
    assert_int_equal(daytona_config_file_set_profile(cf, "other", "http://other/api", "otherkey",
                                                     NULL, &err), 0);
    assert_string_equal(daytona_config_file_active(cf), "default");
    assert_int_equal(daytona_config_file_save(cf, &err), 0);
    daytona_config_file_free(cf);

    assert_int_equal(daytona_client_new(NULL, &c, &err), 0);
    assert_string_equal(daytona_client_api_url(c), "http://file/api");
    assert_string_equal(daytona_client_api_key(c), "filekey");
    assert_string_equal(daytona_client_target(c), "filetarget");
    daytona_client_free(c);

    /* Environment beats the file, field by field. */
    setenv("DAYTONA_API_KEY", "envkey", 1);
    setenv("DAYTONA_TARGET", "envtarget", 1);
    assert_int_equal(daytona_client_new(NULL, &c, &err), 0);
    assert_string_equal(daytona_client_api_key(c), "envkey");
    assert_string_equal(daytona_client_api_url(c), "http://file/api");
    assert_string_equal(daytona_client_target(c), "envtarget");
    daytona_client_free(c);

    /* Explicit beats both; a named profile is used for what is left. */
    cfg.api_key = "explicit";
    cfg.profile = "other";
    unsetenv("DAYTONA_TARGET");
    assert_int_equal(daytona_client_new(&cfg, &c, &err), 0);
    assert_string_equal(daytona_client_api_key(c), "explicit");
    assert_string_equal(daytona_client_api_url(c), "http://other/api");
    assert_null(daytona_client_target(c));
    daytona_client_free(c);

    /* A missing named profile is an error, not a silent fallback. */
    cfg.profile = "typo";
    assert_int_equal(daytona_client_new(&cfg, &c, &err), -ENOENT);
    assert_non_null(strstr(err->message, "typo"));
    daytona_error_free(err);
    err = NULL;

    /* ignore_env / ignore_config_file. */
    cfg = (struct daytona_config) { .ignore_config_file = true };
    assert_int_equal(daytona_client_new(&cfg, &c, &err), 0);
    assert_string_equal(daytona_client_api_key(c), "envkey");
    assert_string_equal(daytona_client_api_url(c), DAYTONA_DEFAULT_API_URL);
    daytona_client_free(c);
    cfg = (struct daytona_config) { .ignore_env = true };
    assert_int_equal(daytona_client_new(&cfg, &c, &err), 0);
    assert_string_equal(daytona_client_api_key(c), "filekey");
    daytona_client_free(c);
    unsetenv("DAYTONA_API_KEY");

    /* A bad URL. */
    cfg = (struct daytona_config) { .api_key = "k", .api_url = "ftp://x" };
    assert_int_equal(daytona_client_new(&cfg, &c, &err), -EINVAL);
    daytona_error_free(err);
}

static void
test_profile_file(void **state)
{
    char path[4096], tmpl[4096];
    daytona_config_file *cf = NULL;
    daytona_error *err = NULL;
    struct daytona_profile p;
    struct stat st;

    snprintf(path, sizeof(path), "%s/sub/dir/config.json", dir);
    /* Unknown keys survive; the file's order is kept. */
    assert_int_equal(daytona_config_file_load(path, &cf, &err), 0);
    assert_int_equal(daytona_config_file_set_profile(cf, "a", "http://a", "ka", "t", &err), 0);
    assert_int_equal(daytona_config_file_set_profile(cf, "b", "http://b", "kb", NULL, &err), 0);
    assert_int_equal(daytona_config_file_save(cf, &err), 0);
    daytona_config_file_free(cf);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    snprintf(tmpl, sizeof(tmpl), "%s/sub/dir/config.json", dir);
    {
        FILE *f = fopen(tmpl, "re");
        char buf[4096] = "";
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = 0;
        assert_non_null(strstr(buf, "\"activeProfile\": \"a\""));
        assert_non_null(strstr(buf, "\"apiKey\": \"kb\""));
    }
    write_file(path, "{\"activeProfile\":\"b\",\"telemetry\":false,\"profiles\":{"
                     "\"a\":{\"apiUrl\":\"http://a\",\"apiKey\":\"ka\",\"color\":\"red\"},"
                     "\"b\":{\"apiUrl\":\"http://b\",\"apiKey\":\"kb\"}}}");
    assert_int_equal(daytona_config_file_load(path, &cf, &err), 0);
    assert_int_equal(daytona_config_file_n_profiles(cf), 2);
    assert_int_equal(daytona_config_file_profile_at(cf, 0, &p), 0);
    assert_string_equal(p.name, "a");
    assert_null(p.target);
    assert_int_equal(daytona_config_file_profile_at(cf, 2, &p), -ENOENT);
    assert_int_equal(daytona_config_file_get(cf, NULL, &p), 0);
    assert_string_equal(p.api_key, "kb");
    assert_int_equal(daytona_config_file_set_active(cf, "zzz", &err), -ENOENT);
    daytona_error_free(err);
    err = NULL;
    assert_int_equal(daytona_config_file_set_active(cf, "a", &err), 0);
    /* "" removes a field, NULL keeps it. */
    assert_int_equal(daytona_config_file_set_profile(cf, "a", NULL, "", "tt", &err), 0);
    assert_int_equal(daytona_config_file_get(cf, "a", &p), 0);
    assert_null(p.api_key);
    assert_string_equal(p.api_url, "http://a");
    assert_string_equal(p.target, "tt");
    assert_int_equal(daytona_config_file_remove_profile(cf, "a", &err), 0);
    assert_null(daytona_config_file_active(cf));
    assert_int_equal(daytona_config_file_remove_profile(cf, "a", &err), -ENOENT);
    daytona_error_free(err);
    err = NULL;
    assert_int_equal(daytona_config_file_set_profile(cf, "", "x", "y", NULL, &err), -EINVAL);
    daytona_error_free(err);
    err = NULL;
    assert_int_equal(daytona_config_file_save(cf, &err), 0);
    daytona_config_file_free(cf);
    {
        FILE *f = fopen(path, "re");
        char buf[4096] = "";
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = 0;
        assert_non_null(strstr(buf, "\"telemetry\": false"));
        assert_null(strstr(buf, "\"ka\""));
        assert_null(strstr(buf, "activeProfile"));
    }
    /* No temp files left behind. */
    snprintf(tmpl, sizeof(tmpl), "%s/sub/dir", dir);
    assert_int_equal(dt_test_count_dir(tmpl), 1);

    /* Broken files. */
    write_file(path, "{not json");
    assert_int_equal(daytona_config_file_load(path, &cf, &err), -EINVAL);
    assert_non_null(strstr(err->message, "not valid JSON"));
    daytona_error_free(err);
    err = NULL;
    write_file(path, "{\"profiles\":[]}");
    assert_int_equal(daytona_config_file_load(path, &cf, &err), -EINVAL);
    daytona_error_free(err);
    err = NULL;
    write_file(path, "");
    assert_int_equal(daytona_config_file_load(path, &cf, &err), 0);
    assert_int_equal(daytona_config_file_n_profiles(cf), 0);
    daytona_config_file_free(cf);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_profile_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
