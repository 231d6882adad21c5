# mk/install.mk: "make install" and "make uninstall", included by the main
# Makefile (it defines B, the build directory).  Defines no default goal.
#
#   make install   [PREFIX=/usr/local] [DESTDIR=]
#   make uninstall [PREFIX=/usr/local] [DESTDIR=]
#
#   $(PREFIX)/sbin/mxd                        the daemon
#   $(SYSTEMDUNITDIR)/mxd.service, mxd@.service  with @SBINDIR@ replaced
#   /etc/mxd/mxd.conf                         only if absent; never replaced
#   $(PREFIX)/share/man/man8/mxd.8, man5/mxd.conf.5
#
# The units and the configuration go to system paths whatever PREFIX is:
# systemd and mxd look for them there.
#
# Include it after B is set: prerequisites are expanded as they are read.
# It also works on its own, installing $(B)/mxd as it is (no rule here
# builds it):  make -f mk/install.mk install B=build DESTDIR=/tmp/root

# Keep whatever default goal the including Makefile has (or will have).
mxd_install_goal := $(.DEFAULT_GOAL)

PREFIX		?= /usr/local
DESTDIR		?=
B		?= build
INSTALL		?= install
SBINDIR		= $(PREFIX)/sbin
MANDIR		= $(PREFIX)/share/man
SYSTEMDUNITDIR	:= $(or $(shell pkg-config --variable=systemdsystemunitdir \
		   systemd 2>/dev/null),/lib/systemd/system)

MXD_UNITS	:= mxd.service mxd@.service
MXD_CONF	= $(DESTDIR)/etc/mxd/mxd.conf

.PHONY: install uninstall
install: $(B)/mxd $(addprefix systemd/,$(MXD_UNITS)) conf/mxd.conf \
    man/mxd.8 man/mxd.conf.5
	$(INSTALL) -D -m 0755 $(B)/mxd $(DESTDIR)$(SBINDIR)/mxd
	$(INSTALL) -d -m 0755 $(DESTDIR)$(SYSTEMDUNITDIR)
	set -e; for u in $(MXD_UNITS); do \
		sed 's|@SBINDIR@|$(SBINDIR)|g' systemd/$$u \
		    >$(DESTDIR)$(SYSTEMDUNITDIR)/$$u.tmp; \
		chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/$$u.tmp; \
		mv -f $(DESTDIR)$(SYSTEMDUNITDIR)/$$u.tmp \
		    $(DESTDIR)$(SYSTEMDUNITDIR)/$$u; \
	done
	$(INSTALL) -D -m 0644 man/mxd.8 $(DESTDIR)$(MANDIR)/man8/mxd.8
	$(INSTALL) -D -m 0644 man/mxd.conf.5 $(DESTDIR)$(MANDIR)/man5/mxd.conf.5
	@if [ -e $(MXD_CONF) ]; then \
		echo "install: kept the existing $(MXD_CONF)"; \
	else \
		$(INSTALL) -D -m 0644 conf/mxd.conf $(MXD_CONF) && \
		echo "install: installed $(MXD_CONF): edit it for your peer"; \
	fi

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/mxd \
	    $(addprefix $(DESTDIR)$(SYSTEMDUNITDIR)/,$(MXD_UNITS)) \
	    $(DESTDIR)$(MANDIR)/man8/mxd.8 $(DESTDIR)$(MANDIR)/man5/mxd.conf.5
	@if [ -e $(MXD_CONF) ]; then \
		echo "uninstall: left $(MXD_CONF) (and anything else in" \
		    "$(DESTDIR)/etc/mxd) in place; remove it by hand"; \
	fi

.DEFAULT_GOAL := $(mxd_install_goal)
