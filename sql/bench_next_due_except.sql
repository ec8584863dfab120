-- bench_next_due_except: as delivery_next_due, leaving out webhook $1's
-- deliveries (the scale part's slow endpoint, whose backlog stays due): now
-- if events wait for fan-out, else the earliest due time of any other
-- webhook's queued work. One probe of deliveries_webhook_due_idx per webhook.
SELECT CASE WHEN EXISTS (SELECT 1 FROM postbox.events WHERE fanout_pending) THEN now()
            ELSE (SELECT min(d.due)
                  FROM postbox.webhooks w
                  CROSS JOIN LATERAL (
                      SELECT q.next_attempt_at AS due
                      FROM postbox.deliveries q
                      WHERE q.webhook_id = w.id
                        AND q.status IN ('pending', 'retrying')
                      ORDER BY q.next_attempt_at
                      LIMIT 1) d
                  WHERE w.id <> $1)
       END AS next_due
