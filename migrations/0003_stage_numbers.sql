-- tenantize journal, version 3: stage numbers are no longer 1 to 8. The cutover is stage 10
-- (9 is kept for a stage to come), so a step's stage is any positive number below 100.
-- Applied by the tool itself (embedded in the binary), inside one transaction, once.

ALTER TABLE tenantize.steps DROP CONSTRAINT IF EXISTS steps_stage_check;
ALTER TABLE tenantize.steps ADD CONSTRAINT steps_stage_check CHECK (stage BETWEEN 1 AND 99);
