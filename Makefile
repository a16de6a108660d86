# mailark build.  `make` builds build/mailark; `make check` runs every test
# (unit tests in two builds, integration tests against the real daemon);
# `make run` initialises ./var if new and serves in the foreground.

BUILD     ?= build
SAN       ?= 0
CC        ?= cc
PKGS      := libevent_core libevent_openssl libevent_pthreads openssl sqlite3 \
             jansson libmicrohttpd inih libunbound libsodium libzstd ldap \
             gmime-3.0 libpst libarchive libcurl opendkim libmagic
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS_BASE := -std=c17 -D_GNU_SOURCE -g -Wall -Wextra -Werror -Wshadow \
               -Wno-unused-parameter -Wstrict-prototypes -Wmissing-prototypes \
               -Isrc $(PKG_CFLAGS) -MMD -MP
ifeq ($(SAN),1)
CFLAGS_OPT := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS_SAN := -fsanitize=address,undefined
else
CFLAGS_OPT := -O2
LDFLAGS_SAN :=
endif
CFLAGS  := $(CFLAGS_BASE) $(CFLAGS_OPT) $(EXTRA_CFLAGS)
LDLIBS  := $(PKG_LIBS) -lspf2 -lopendmarc -lpthread -lm

LIB_SRCS  := $(shell find src -name '*.c' ! -name main.c | sort)
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
MAIN_OBJ  := $(BUILD)/obj/src/main.o
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps run check unit integration asan clean bench
all: $(BUILD)/mailark $(UNIT_BINS)

deps:
	@bash scripts/deps.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libmailark.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/mailark: $(MAIN_OBJ) $(BUILD)/libmailark.a
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libmailark.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(shell pkg-config --cflags cmocka) $(LDFLAGS_SAN) -o $@ $< \
	    $(BUILD)/libmailark.a $(LDLIBS) $(shell pkg-config --libs cmocka)

unit: $(UNIT_BINS)
	@bash tests/run-unit.sh $(BUILD)

run: deps
	@$(MAKE) --no-print-directory $(BUILD)/mailark
	@bash scripts/run.sh $(BUILD)/mailark

check: deps
	@bash tests/check.sh

bench: deps
	@$(MAKE) --no-print-directory $(BUILD)/mailark
	@bash bench/run.sh

clean:
	rm -rf build build-asan

-include $(LIB_OBJS:.o=.d) $(MAIN_OBJ:.o=.d) $(UNIT_BINS:%=%.d)
