#!/usr/bin/env bash
# RUNBOOK "Replay failed stream batches": for each message in the stream DLQ (a failed or expired
# stream batch: its shard and sequence range, not its records), read the batch's records back
# from the stream (they stay 24 h), give them to the processor's `live` alias as the stream
# mapping would, and delete the DLQ message only when the processor succeeded: no FunctionError
# in `aws lambda invoke`'s output (the CLI exits 0 on a function error) and no batchItemFailures
# in its response. Stops at the first failure, leaving that message in the DLQ.
#
#   scripts/ops-replay-stream-dlq.sh [--max N] [--dry-run]
#
#   --max N     replay at most N messages (default 10)
#   --dry-run   read and print each batch, invoke nothing, delete nothing
#
# Environment, as RUNBOOK "Before you start" sets it: P (the stack's name prefix, iops-ws-<stack>),
# STREAM_DLQ_URL, AWS_REGION and credentials. Needs the AWS CLI and jq.
set -euo pipefail

max=10
dry_run=0
while [ $# -gt 0 ]; do
  case "$1" in
    --max)
      max=${2:?--max needs a number}
      shift 2
      ;;
    --dry-run)
      dry_run=1
      shift
      ;;
    *)
      echo "usage: $0 [--max N] [--dry-run]" >&2
      exit 2
      ;;
  esac
done
: "${P:?set P, the name prefix of the stack (RUNBOOK: Before you start)}"
: "${STREAM_DLQ_URL:?set STREAM_DLQ_URL (RUNBOOK: Before you start)}"

function_name="$P-processor"
# The processor's timeout is 300 s by default (900 at most): a message being replayed must not
# become visible again meanwhile, or a second run would replay it twice.
visibility=960
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Sequence numbers are decimal strings longer than a double holds: compare them as strings,
# the shorter being the smaller.
jq_seq='def seq_le($a; $b): ($a | length) < ($b | length) or (($a | length) == ($b | length) and $a <= $b);'

replayed=0
while [ "$replayed" -lt "$max" ]; do
  aws sqs receive-message --queue-url "$STREAM_DLQ_URL" --max-number-of-messages 1 \
    --visibility-timeout "$visibility" --output json >"$work/message.json"
  if [ "$(jq '(.Messages // []) | length' "$work/message.json")" -eq 0 ]; then
    break
  fi
  receipt=$(jq -r '.Messages[0].ReceiptHandle' "$work/message.json")
  jq '.Messages[0].Body | fromjson' "$work/message.json" >"$work/body.json"
  condition=$(jq -r '.requestContext.condition // "unknown"' "$work/body.json")
  stream_arn=$(jq -r '.DDBStreamBatchInfo.streamArn' "$work/body.json")
  shard=$(jq -r '.DDBStreamBatchInfo.shardId' "$work/body.json")
  first=$(jq -r '.DDBStreamBatchInfo.startSequenceNumber' "$work/body.json")
  last=$(jq -r '.DDBStreamBatchInfo.endSequenceNumber' "$work/body.json")
  size=$(jq -r '.DDBStreamBatchInfo.batchSize' "$work/body.json")
  echo "batch $shard $first..$last ($size records, $condition)"

  if ! aws dynamodbstreams get-shard-iterator --stream-arn "$stream_arn" --shard-id "$shard" \
    --shard-iterator-type AT_SEQUENCE_NUMBER --sequence-number "$first" \
    --query ShardIterator --output text >"$work/iterator.txt"; then
    echo "cannot read the batch back (past the stream's 24 h, or the shard is gone): the message stays; purge it once noted" >&2
    exit 1
  fi
  iterator=$(cat "$work/iterator.txt")

  # Records from the first sequence number to the last, over as many pages as it takes (a page
  # may be empty; an open shard's tip answers empty pages forever).
  echo '[]' >"$work/records.json"
  empty=0
  while [ -n "$iterator" ] && [ "$iterator" != None ] && [ "$iterator" != null ]; do
    have=$(jq length "$work/records.json")
    [ "$have" -ge "$size" ] && break
    TZ=UTC aws dynamodbstreams get-records --shard-iterator "$iterator" --limit $((size - have)) \
      --output json >"$work/page.json"
    jq --slurpfile page "$work/page.json" --arg last "$last" "$jq_seq"' . + [$page[0].Records[]? | select(seq_le(.dynamodb.SequenceNumber; $last))]' \
      "$work/records.json" >"$work/records.next.json"
    mv "$work/records.next.json" "$work/records.json"
    if jq -e --arg last "$last" "$jq_seq"' ([.Records[]?] | length) > 0 and (seq_le($last; .Records[-1].dynamodb.SequenceNumber))' \
      "$work/page.json" >/dev/null; then
      break
    fi
    if [ "$(jq '[.Records[]?] | length' "$work/page.json")" -eq 0 ]; then
      empty=$((empty + 1))
      [ "$empty" -ge 10 ] && break
    fi
    iterator=$(jq -r '.NextShardIterator // empty' "$work/page.json")
  done
  count=$(jq length "$work/records.json")
  if [ "$count" -eq 0 ]; then
    echo "no record of the batch is left in the stream: the message stays; purge it once noted" >&2
    exit 1
  fi
  [ "$count" -lt "$size" ] && echo "note: $count of $size records read back" >&2

  # The event as the stream mapping builds it: the stream ARN on each record, creation times in
  # epoch seconds (the CLI prints them as dates).
  jq --arg arn "$stream_arn" '{Records: [.[]
      | .eventSourceARN = $arn
      | .dynamodb.ApproximateCreationDateTime |= (if type == "string"
          then (sub("\\.[0-9]+"; "") | sub("\\+00:00$"; "Z") | fromdateiso8601) else . end)]}' \
    "$work/records.json" >"$work/event.json"

  if [ "$dry_run" -eq 1 ]; then
    jq -c '.Records[] | {eventName, keys: .dynamodb.Keys, sequence: .dynamodb.SequenceNumber}' "$work/event.json"
    # Visible again at once: a dry run changes nothing.
    aws sqs change-message-visibility --queue-url "$STREAM_DLQ_URL" --receipt-handle "$receipt" --visibility-timeout 0
    replayed=$((replayed + 1))
    continue
  fi

  # No read timeout: the CLI's default (60 s) is shorter than the processor's run, and on a
  # timeout it would invoke again. One attempt: a throttled invoke fails here instead, and the
  # message stays for the next run.
  if ! AWS_MAX_ATTEMPTS=1 aws lambda invoke --function-name "$function_name" --qualifier live \
    --payload "fileb://$work/event.json" --cli-read-timeout 0 --cli-connect-timeout 10 \
    --output json "$work/response.json" >"$work/invoke.json"; then
    echo "the invoke failed (see above): the DLQ message stays" >&2
    exit 1
  fi
  function_error=$(jq -r '.FunctionError // empty' "$work/invoke.json")
  if [ -n "$function_error" ]; then
    echo "the processor failed ($function_error): $(head -c 2000 "$work/response.json")" >&2
    echo "the DLQ message stays; fix the cause (RUNBOOK: processor-errors) and run again" >&2
    exit 1
  fi
  if ! jq -e '(.batchItemFailures // []) | length == 0' "$work/response.json" >/dev/null 2>&1; then
    echo "the processor reported failed records: $(head -c 2000 "$work/response.json")" >&2
    echo "the DLQ message stays" >&2
    exit 1
  fi
  aws sqs delete-message --queue-url "$STREAM_DLQ_URL" --receipt-handle "$receipt"
  echo "replayed $count records (version $(jq -r '.ExecutedVersion // "?"' "$work/invoke.json")); DLQ message deleted"
  replayed=$((replayed + 1))
done
echo "done: $replayed batch(es) $([ "$dry_run" -eq 1 ] && echo read || echo replayed)"
