# SPDX-License-Identifier: MIT
# Included by Makefile.am (automake include: paths are from the top).
# ---- manual pages ------------------------------------------------------------
dist_man_MANS = \
	man/hotmod.3 \
	man/hotmod_module.3 \
	man/hm_open.3 \
	man/hm_get.3 \
	man/hm_dispatch.3 \
	man/hm_strerror.3 \
	man/hm_watch.3 \
	man/hm_status.3 \
	man/hm_running.3 \
	man/hm_readmit.3 \
	man/hm_lock.3 \
	man/hotmod_http.3 \
	man/hotmod.1 \
	man/hotmod-httpd.8

# Every name a page documents gets a ".so" alias page, so that "man hm_put"
# finds hm_get(3).  The aliases are read from the pages' NAME sections.
install-data-hook:
	for page in $(dist_man_MANS); do \
		case $$page in *.3) ;; *) continue ;; esac; \
		for name in `sed -n '/^\.Sh NAME/,/^\.Nd/s/^\.Nm \([^ ]*\).*/\1/p' $(srcdir)/$$page`; do \
			base=`basename $$page`; \
			test "$$name.3" = "$$base" || \
			echo ".so man3/$$base" > "$(DESTDIR)$(man3dir)/$$name.3" || exit 1; \
		done; \
	done

uninstall-hook:
	for page in $(dist_man_MANS); do \
		case $$page in *.3) ;; *) continue ;; esac; \
		for name in `sed -n '/^\.Sh NAME/,/^\.Nd/s/^\.Nm \([^ ]*\).*/\1/p' $(srcdir)/$$page`; do \
			test "$$name.3" = "`basename $$page`" || rm -f "$(DESTDIR)$(man3dir)/$$name.3"; \
		done; \
	done
