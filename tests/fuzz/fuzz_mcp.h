/* The input of the mcp harness (fuzz_mcp.c), shared with fuzz-seeds so
   that the seeds it writes are sequences of these operations.

   An input is a header, then operations until the bytes run out:

     header   := setup:u8 limits:u8 front:u8
       setup bit 0: initialize first, as revision (setup >> 1) % 4
       (oldest first); limits choose --max-reply, the session limit,
       --max-queued and --max-code; front bit 0 leaves the venv's
       package list empty.
     op       := code:u8 operands

   The operand of OP_RAW is a message: len:u8 (255: len:u16 follows)
   and that many bytes.  Every other operand is drawn byte by byte as the
   operation goes (fake_front.h: reads past the end are zero).  */
#ifndef KILN_FUZZ_MCP_H
#define KILN_FUZZ_MCP_H

enum fuzz_mcp_op {
  OP_RAW,        /* a message as it is */
  OP_TOO_LONG,   /* the start of a message over --max-message */
  OP_INITIALIZE, /* initialize, with a version drawn from the input */
  OP_RUN,        /* tools/call run_python, with or without a progress token */
  OP_FILE,       /* upload_file, list_files or read_file */
  OP_SESSIONS,   /* list_sessions or close_session */
  OP_READ,       /* resources/read of a kiln:// URI */
  OP_LIST,       /* tools/list, resources/list or resources/templates/list */
  OP_COMPLETE,   /* completion/complete */
  OP_LEVEL,      /* logging/setLevel */
  OP_CANCEL,     /* notifications/cancelled */
  OP_MISC,       /* ping, notifications, client responses, malformed requests */
  OP_BATCH,      /* a JSON-RPC batch of the above */
  OP_MANGLED,    /* one of the above, cut short or with a byte changed */
  OP_ANSWER,     /* the fake front answers its Nth pending request */
  OP_OUTPUT,     /* a watched cell writes output */
  OP_LOG,        /* the front logs (notifications/message) */
  OP_FRONT,      /* what the front does with its next calls: mood:u8 len:u8 reply */
  OP_CLOSE,      /* the client goes: the connection is freed, a new one made */
  OP_COUNT,
};

#endif
