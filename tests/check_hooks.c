/*
 * check_hooks.c - the hook chain: the order of prepare, handle, commit,
 * rollback and release for the module and its global module in every
 * branch, the default handler, the per-request slots and nested dispatch.
 */
#include "util.h"

#include <stdlib.h>
#include <string.h>

static char *root;
static struct fx_app app;
static hm_loader *l;

static void with_global(void)
{
	memset(&app, 0, sizeof app);
	root = mkroot();
	deploy_cp("probe_v1", root, "m.so");
	deploy_cp("global_v1", root, "_global.so");
	deploy_cp("nohandler", root, "nohandler.so");
	deploy_cp("redirect", root, "redirect.so");
	l = open_loader(root, &app, HM_CHECK_NEVER);
}

static void without_global(void)
{
	memset(&app, 0, sizeof app);
	root = mkroot();
	deploy_cp("probe_v1", root, "sub/m.so");
	deploy_cp("nohandler", root, "sub/nohandler.so");
	l = open_loader(root, &app, HM_CHECK_NEVER);
}

static void teardown(void)
{
	ck_assert_int_eq(hm_close(l, -1), 0);
	ck_assert_int_eq(atomic_load(&app.inits), atomic_load(&app.finis));
	rmroot(root);
}

/* Dispatch path with hook `fail` failing; check the log and the result. */
static void chain(const char *path, const char *fail, int want_rc, const char *want_log)
{
	struct fx_req req = {.fail = fail};
	int rc = hm_dispatch(l, path, &req);

	ck_assert_msg(rc == want_rc, "%s failing %s: rc %d (%s), want %d", path,
		fail ? fail : "nothing", rc, hm_errmsg(), want_rc);
	ck_assert_str_eq(req.log, want_log);
}

START_TEST(test_success_runs_global_then_module_and_unwinds_module_first)
{
	chain("m", NULL, 1, "G.prepare M.prepare M.handle M.commit M.release G.commit G.release");
}
END_TEST

START_TEST(test_failed_global_prepare_runs_nothing_else)
{
	chain("m", "G.prepare", HM_EHOOK, "G.prepare");
	ck_assert_ptr_nonnull(strstr(hm_errmsg(), "_global.so version 1: global prepare returned -7"));
}
END_TEST

START_TEST(test_failed_module_prepare_rolls_back_and_releases_the_global)
{
	chain("m", "M.prepare", HM_EHOOK, "G.prepare M.prepare G.rollback G.release");
	ck_assert_ptr_nonnull(strstr(hm_errmsg(), "m.so version 1: module prepare returned -7"));
}
END_TEST

START_TEST(test_failed_handler_rolls_back_both_layers)
{
	chain("m", "M.handle", HM_EHOOK,
		"G.prepare M.prepare M.handle M.rollback M.release G.rollback G.release");
	ck_assert_ptr_nonnull(strstr(hm_errmsg(), "module handle returned -7"));
}
END_TEST

START_TEST(test_failed_module_commit_releases_it_and_rolls_back_the_global)
{
	chain("m", "M.commit", HM_EHOOK,
		"G.prepare M.prepare M.handle M.commit M.release G.rollback G.release");
	ck_assert_ptr_nonnull(strstr(hm_errmsg(), "module commit returned -7"));
}
END_TEST

START_TEST(test_failed_global_commit_is_reported_after_the_module_committed)
{
	chain("m", "G.commit", HM_EHOOK,
		"G.prepare M.prepare M.handle M.commit M.release G.commit G.release");
	ck_assert_ptr_nonnull(strstr(hm_errmsg(), "global commit returned -7"));
}
END_TEST

START_TEST(test_failing_release_changes_nothing)
{
	/* release cannot fail: the probe's "failure" there is ignored */
	chain("m", "M.release", 1, "G.prepare M.prepare M.handle M.commit M.release G.commit G.release");
	chain("m", "G.release", 1, "G.prepare M.prepare M.handle M.commit M.release G.commit G.release");
}
END_TEST

START_TEST(test_global_prepare_hands_its_slot_to_the_handler)
{
	struct fx_req req = {0};

	ck_assert_int_eq(hm_dispatch(l, "m", &req), 1);
	ck_assert_ptr_nonnull(req.global_slot);
	ck_assert_uint_eq(req.global_version, 1);
	ck_assert_uint_eq(req.version, 1);
}
END_TEST

START_TEST(test_module_without_handler_is_served_by_the_global_handler)
{
	/* nohandler has a prepare that logs nothing: only G hooks show */
	chain("nohandler", NULL, 101, "G.prepare G.handle G.commit G.release");
}
END_TEST

START_TEST(test_redirect_runs_the_nested_chain_inside_the_outer_one)
{
	struct fx_req req = {.redirect_to = "m"};

	ck_assert_int_eq(hm_dispatch(l, "redirect", &req), 50);
	ck_assert_int_eq(req.redirect_rc, 1);
	ck_assert_int_eq(req.depth, 1); /* the nested handler saw the outer call */
	/* Outer global prepare, then the nested full chain, then outer unwinding */
	ck_assert_str_eq(req.log, "G.prepare G.prepare M.prepare M.handle M.commit M.release "
				  "G.commit G.release G.commit G.release");
}
END_TEST

START_TEST(test_redirect_loop_stops_at_the_depth_limit)
{
	struct fx_req req = {.redirect_to = "redirect"};

	ck_assert_int_eq(hm_dispatch(l, "redirect", &req), HM_EHOOK);
	ck_assert_int_eq(req.saw_eloop, 1);
}
END_TEST

START_TEST(test_without_global_only_module_hooks_run)
{
	struct fx_req req = {0};

	chain("sub/m", NULL, 1, "M.prepare M.handle M.commit M.release");
	chain("sub/m", "M.prepare", HM_EHOOK, "M.prepare");
	chain("sub/m", "M.handle", HM_EHOOK, "M.prepare M.handle M.rollback M.release");
	chain("sub/m", "M.commit", HM_EHOOK, "M.prepare M.handle M.commit M.release");
	ck_assert_int_eq(hm_dispatch(l, "sub/m", &req), 1);
	ck_assert_ptr_null(req.global_slot);
	ck_assert_uint_eq(req.global_version, 0);
}
END_TEST

START_TEST(test_module_without_handler_or_global_fails_before_any_hook)
{
	struct fx_req req = {0};

	ck_assert_int_eq(hm_dispatch(l, "sub/nohandler", &req), HM_ENOHANDLER);
	ck_assert_str_eq(req.log, "");
	ck_assert_ptr_nonnull(strstr(hm_errmsg(), "sub/nohandler.so"));
}
END_TEST

START_TEST(test_held_reference_can_be_called_many_times)
{
	hm_module *m;
	struct fx_req req = {0};

	ck_assert_int_eq(hm_get(l, "/m", &m), 0);
	ck_assert_str_eq(hm_module_path(m), "m.so");
	for (int i = 0; i < 3; i++) {
		req.log[0] = '\0';
		ck_assert_int_eq(hm_call(m, &req), 1);
	}
	ck_assert_int_eq(atomic_load(&app.handles), 3);
	hm_put(m);
}
END_TEST

static Suite *hooks_suite(void)
{
	Suite *s = suite_create("hooks");
	TCase *g = tcase_create("with_global"), *n = tcase_create("without_global");

	tcase_add_checked_fixture(g, with_global, teardown);
	tcase_add_test(g, test_success_runs_global_then_module_and_unwinds_module_first);
	tcase_add_test(g, test_failed_global_prepare_runs_nothing_else);
	tcase_add_test(g, test_failed_module_prepare_rolls_back_and_releases_the_global);
	tcase_add_test(g, test_failed_handler_rolls_back_both_layers);
	tcase_add_test(g, test_failed_module_commit_releases_it_and_rolls_back_the_global);
	tcase_add_test(g, test_failed_global_commit_is_reported_after_the_module_committed);
	tcase_add_test(g, test_failing_release_changes_nothing);
	tcase_add_test(g, test_global_prepare_hands_its_slot_to_the_handler);
	tcase_add_test(g, test_module_without_handler_is_served_by_the_global_handler);
	tcase_add_test(g, test_redirect_runs_the_nested_chain_inside_the_outer_one);
	tcase_add_test(g, test_redirect_loop_stops_at_the_depth_limit);
	tcase_add_test(g, test_held_reference_can_be_called_many_times);
	suite_add_tcase(s, g);
	tcase_add_checked_fixture(n, without_global, teardown);
	tcase_add_test(n, test_without_global_only_module_hooks_run);
	tcase_add_test(n, test_module_without_handler_or_global_fails_before_any_hook);
	suite_add_tcase(s, n);
	return s;
}

int main(void)
{
	return run_suite(hooks_suite(), CK_NORMAL);
}
