/* SPDX-License-Identifier: MIT */
/*
 * check_hooks.c - the hook chain: the order of prepare, handle, commit,
 * rollback and release for the module and its global module in every
 * branch, the default handler, the per-request slots and nested dispatch.
 */
#include "util.h"
#include "adopt.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
}

static void without_global(void)
{
	memset(&app, 0, sizeof app);
	root = mkroot();
	deploy_cp("probe_v1", root, "sub/m.so");
	deploy_cp("nohandler", root, "sub/nohandler.so");
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_NEVER);
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

/* Open a second loader on root with this max_depth; 0 or the error. */
static int open_with_depth(int depth, hm_loader **out)
{
	struct hm_options o;

	loader_options(&o, root, &(const struct loader_opts){.app = &app,
		.interval_ms = HM_CHECK_NEVER, .removal_delay_ms = LIB_DEFAULT});
	o.max_depth = depth;
	return hm_open(out, &o);
}

START_TEST(test_max_depth_beyond_what_a_stack_holds_is_refused_and_the_bound_runs)
{
	static const int refused[] = {HM_DEPTH_MAX + 1, 37436, 100000, 0x7fffffff, 0, -1};
	struct fx_req req = {.redirect_to = "redirect"};
	hm_loader *deep = (hm_loader *)&req;

	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		ck_assert_int_eq(open_with_depth(refused[i], &deep), HM_EINVAL);
		ck_assert_ptr_null(deep);
		ck_assert_msg(strstr(hm_errmsg(), "options.max_depth") &&
				      strstr(hm_errmsg(), "HM_DEPTH_MAX"),
			"max_depth %d: %s", refused[i], hm_errmsg());
	}
	/* The bound itself: a redirect loop stops at it, on a thread with the
	 * default stack, instead of overflowing the stack first. */
	ck_assert_int_eq(open_with_depth(HM_DEPTH_MAX, &deep), 0);
	ck_assert_int_eq(hm_dispatch(deep, "redirect", &req), HM_EHOOK);
	ck_assert_int_eq(req.saw_eloop, 1);
	ck_assert_int_eq(hm_close(deep, -1), 0);
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

/* ---- state hand-over: one test per sentence of hotmod_module(3) ---- */

static struct fx_adopt ad;
static struct gate finis_gate = GATE_INIT;
static int next_build; /* adopt_v1 and adopt_v2 alternate: new bytes each time */

static void count_fini(struct fx_app *a, hm_ctx *ctx)
{
	(void)a;
	(void)ctx;
	gate_add(&finis_gate, 1);
}

static void with_adopt(void)
{
	memset(&app, 0, sizeof app);
	memset(&ad, 0, sizeof ad);
	finis_gate.value = 0;
	app.arg = &ad;
	app.on_fini = count_fini;
	next_build = 2;
	root = mkroot();
	deploy_cp("adopt_v1", root, "m.so");
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_ALWAYS);
}

/* Replace m.so with the other build; its init runs with plan. */
static void reload(const char *plan)
{
	ad.plan[HM_LAYER_MODULE] = plan;
	deploy_mv(next_build == 1 ? "adopt_v1" : "adopt_v2", root, "m.so");
	next_build = 3 - next_build;
	ck_assert_int_ge(hm_refresh(l, "m"), 0);
}

/* The number of m's current version. */
static uint64_t current(void)
{
	hm_module *v;
	uint64_t n;

	ck_assert_int_eq(hm_get(l, "m", &v), 0);
	n = hm_module_version(v);
	hm_put(v);
	return n;
}

/* Close (every fini runs), then open again for the teardown. */
static void close_all(void)
{
	ck_assert_int_eq(hm_close(l, -1), 0);
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_ALWAYS);
}

#define M HM_LAYER_MODULE
#define G HM_LAYER_GLOBAL

START_TEST(test_prev_state_is_the_replaced_state_and_null_for_a_first_version)
{
	char *m = at(root, "m.so");

	ad.plan[M] = "new";
	ck_assert_int_eq(hm_dispatch(l, "m", NULL), 1001);
	ck_assert_ptr_null(ad.prev_state[M][1]); /* the first version of a file */
	reload("new");
	ck_assert_ptr_nonnull(ad.state[M][1]);
	ck_assert_ptr_eq(ad.prev_state[M][2], ad.state[M][1]);
	reload(""); /* stores no state */
	ck_assert_ptr_null(ad.state[M][3]);
	reload("new");
	ck_assert_ptr_null(ad.prev_state[M][4]); /* the replaced one stored none */
	ck_assert_int_eq(unlink(m), 0);
	ck_assert_int_eq(hm_dispatch(l, "m", NULL), HM_ENOENT);
	reload("new");
	uint64_t v = current(); /* the first version after the file was removed */
	ck_assert_uint_ge(v, 5);
	ck_assert_uint_lt(v, FX_ADOPT_VERSIONS);
	ck_assert_ptr_nonnull(ad.state[M][v]);
	ck_assert_ptr_null(ad.prev_state[M][v]);
	free(m);
}
END_TEST

START_TEST(test_adopt_returns_the_state_makes_it_this_versions_and_marks_it)
{
	ad.plan[M] = "new";
	ck_assert_int_eq(hm_dispatch(l, "m", NULL), 1001);
	ck_assert_int_eq(hm_dispatch(l, "m", NULL), 1002);
	reload("new,adopt"); /* adopt replaces what set_state stored before */
	ck_assert_ptr_nonnull(ad.state[M][1]);
	ck_assert_ptr_eq(ad.adopt_ret[M][2], ad.state[M][1]);
	ck_assert_ptr_eq(ad.state[M][2], ad.state[M][1]);
	ck_assert_int_eq(atomic_load(&ad.boxes_freed), 1); /* the fixture's own "new" */
	ck_assert_int_eq(hm_dispatch(l, "m", NULL), 2003); /* the count goes on */
	close_all();
	ck_assert_int_eq(ad.fini_adopted[M][1], 1 + 1); /* hm_ctx_adopted() was 1 */
	ck_assert_int_eq(ad.fini_adopted[M][2], 0 + 1);
	ck_assert_int_eq(atomic_load(&ad.boxes_freed), 2); /* the state once, by v2 */
}
END_TEST

START_TEST(test_adopt_marks_the_adoption_even_when_the_state_is_null)
{
	ad.plan[M] = ""; /* version 1 stores no state */
	ck_assert_int_eq(hm_dispatch(l, "m", NULL), 0);
	reload("adopt,new");
	ck_assert_ptr_null(ad.adopt_ret[M][2]);
	ck_assert_ptr_nonnull(ad.state[M][2]);
	close_all();
	ck_assert_int_eq(ad.fini_adopted[M][1], 1 + 1);
	ck_assert_int_eq(ad.fini_adopted[M][2], 0 + 1);
}
END_TEST

START_TEST(test_set_state_after_adopt_keeps_the_adoption_so_a_wrapped_state_survives)
{
	ad.plan[M] = "new";
	ck_assert_int_eq(hm_dispatch(l, "m", NULL), 1001);
	reload("adopt,wrap"); /* the new state wraps the adopted one */
	const struct fx_box *b = ad.state[M][2];
	ck_assert_ptr_nonnull(b);
	ck_assert_ptr_ne(b, ad.state[M][1]);
	ck_assert_ptr_eq(b->inner, ad.state[M][1]);
	ck_assert_int_eq(hm_dispatch(l, "m", NULL), 2002);
	/* Version 1 is finalised while version 2 serves: its fini must leave
	 * the adopted state alone. */
	ck_assert(gate_wait(&finis_gate, 1));
	ck_assert_int_eq(ad.fini_adopted[M][1], 1 + 1);
	ck_assert_int_eq(atomic_load(&ad.boxes_freed), 0);
	ck_assert_int_eq(hm_dispatch(l, "m", NULL), 2003);
	close_all();
	ck_assert_int_eq(atomic_load(&ad.boxes_freed), 2); /* both boxes, by v2 */
}
END_TEST

START_TEST(test_init_that_adopts_and_fails_undoes_the_adoption)
{
	ad.plan[M] = "new";
	ck_assert_int_eq(hm_dispatch(l, "m", NULL), 1001);
	ad.plan[M] = "adopt,wrap,fail";
	deploy_mv("adopt_v2", root, "m.so");
	ck_assert_int_eq(hm_refresh(l, "m"), HM_EINIT);
	/* the replaced version keeps serving with its state */
	ck_assert_int_eq(hm_dispatch(l, "m", NULL), 1002);
	ck_assert_int_eq(atomic_load(&ad.boxes_freed), 1); /* the failed init's own */
	next_build = 2; /* the failed file's build again, as a new file */
	reload("new");
	ck_assert_int_eq(hm_dispatch(l, "m", NULL), 2001);
	close_all();
	ck_assert_int_eq(ad.fini_adopted[M][1], 0 + 1); /* and frees it */
	ck_assert_int_eq(atomic_load(&ad.boxes_freed), 3);
}
END_TEST

START_TEST(test_global_and_reinitialised_module_get_the_states_they_replace)
{
	ck_assert_int_eq(hm_close(l, -1), 0);
	deploy_cp("adopt_v1", root, "_global.so");
	l = open_loader(root, .app = &app, .interval_ms = HM_CHECK_ALWAYS);
	ad.plan[G] = ad.plan[M] = "new";
	ck_assert_int_eq(hm_dispatch(l, "m", NULL), 1001);
	/* A new global: the module (same file) is initialised against it. */
	ad.plan[G] = ad.plan[M] = "adopt";
	deploy_mv("adopt_v2", root, "_global.so");
	ck_assert_int_eq(hm_dispatch(l, "m", NULL), 1002);
	ck_assert_uint_eq(current(), 2);
	ck_assert_ptr_nonnull(ad.state[G][1]);
	ck_assert_ptr_eq(ad.prev_state[G][2], ad.state[G][1]);
	ck_assert_ptr_eq(ad.adopt_ret[G][2], ad.state[G][1]);
	ck_assert_ptr_nonnull(ad.state[M][1]);
	ck_assert_ptr_eq(ad.prev_state[M][2], ad.state[M][1]);
	ck_assert_ptr_eq(ad.adopt_ret[M][2], ad.state[M][1]);
	close_all();
	ck_assert_int_eq(ad.fini_adopted[G][1], 1 + 1);
	ck_assert_int_eq(ad.fini_adopted[M][1], 1 + 1);
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
	tcase_add_test(g, test_max_depth_beyond_what_a_stack_holds_is_refused_and_the_bound_runs);
	suite_add_tcase(s, g);
	tcase_add_checked_fixture(n, without_global, teardown);
	tcase_add_test(n, test_without_global_only_module_hooks_run);
	tcase_add_test(n, test_module_without_handler_or_global_fails_before_any_hook);
	suite_add_tcase(s, n);
	TCase *h = tcase_create("handover");
	tcase_add_checked_fixture(h, with_adopt, teardown);
	tcase_add_test(h, test_prev_state_is_the_replaced_state_and_null_for_a_first_version);
	tcase_add_test(h, test_adopt_returns_the_state_makes_it_this_versions_and_marks_it);
	tcase_add_test(h, test_adopt_marks_the_adoption_even_when_the_state_is_null);
	tcase_add_test(h, test_set_state_after_adopt_keeps_the_adoption_so_a_wrapped_state_survives);
	tcase_add_test(h, test_init_that_adopts_and_fails_undoes_the_adoption);
	tcase_add_test(h, test_global_and_reinitialised_module_get_the_states_they_replace);
	suite_add_tcase(s, h);
	return s;
}

int main(void)
{
	return run_suite(hooks_suite(), CK_NORMAL);
}
