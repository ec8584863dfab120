-- webhook_filter_problem: why $1 is not a valid webhook filter, or NULL when
-- it is (postbox.webhook_filter_problem, V9: the rule the table's CHECK
-- applies). Reads and locks nothing.
SELECT postbox.webhook_filter_problem($1::jsonb)
